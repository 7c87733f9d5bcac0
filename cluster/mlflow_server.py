"""Start, inspect and stop a local MLflow tracking server (127.0.0.1 unless --host says otherwise).

    python cluster/mlflow_server.py start              # prints http://127.0.0.1:PORT
    python cluster/mlflow_server.py status
    python cluster/mlflow_server.py stop

A thin wrapper: the same as ``physdiff mlflow ...`` (``physdiff mlflow --help`` lists every flag).
"""

import sys

from physdiff.cli import main

if __name__ == "__main__":
    main(["mlflow", *sys.argv[1:]])

"""
A kubeconfig C{exec} credential plugin for the end-to-end tests, as small as they come:
it prints an ExecCredential carrying the bearer token read from the file it is given.

    python exec_credential.py TOKEN_FILE
"""

import json
import os
import sys


def credential(token: str, api_version: str) -> dict:
    """The ExecCredential a client reads its token from."""
    return {"apiVersion": api_version, "kind": "ExecCredential", "status": {"token": token}}


def main() -> None:
    with open(sys.argv[1]) as token_file:
        token = token_file.read().strip()
    request = json.loads(os.environ.get("KUBERNETES_EXEC_INFO") or "{}")
    api_version = request.get("apiVersion") or "client.authentication.k8s.io/v1beta1"
    json.dump(credential(token, api_version), sys.stdout)


if __name__ == "__main__":
    main()

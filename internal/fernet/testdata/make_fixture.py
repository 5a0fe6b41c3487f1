#!/usr/bin/python3
"""Writes prowler_fixture.json: a Fernet key and a token made by Python's
cryptography package (the library Prowler App encrypts integration credentials
with), so the Go tests can check interoperability without Python.

Run from the repository root with Debian's python3-cryptography:

    /usr/bin/python3 fernet/testdata/make_fixture.py

The output is committed; CI does not need Python.
"""

import json
import os

from cryptography.fernet import Fernet

PLAINTEXT = json.dumps(
    {
        "aws_access_key_id": "AKIAFERNETFIXTURE0001",
        "aws_secret_access_key": "fixture-secret/for+tests",
        "role_arn": "arn:aws:iam::123456789012:role/ProwlerScan",
        "external_id": "tenant-fixture",
    }
)


def main():
    key = Fernet.generate_key()
    token = Fernet(key).encrypt(PLAINTEXT.encode("utf-8"))
    out = {
        "key": key.decode("ascii"),
        "token": token.decode("ascii"),
        "plaintext": PLAINTEXT,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prowler_fixture.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()

"""The official Snowflake connector against the shim: its fidelity check.

    python tests/fakesnow/connector_check.py PORT

Reads a 10,000-row result that the shim serves in chunks, waits out a
statement that outlasts the shim's synchronous window, and logs in with a
programmatic access token (`pat-good`). Prints one JSON line of findings.
"""

import json
import sys

import snowflake.connector


def connect(port: int, **auth):
    return snowflake.connector.connect(
        account="testacct",
        user="tester",
        host="127.0.0.1",
        port=port,
        protocol="http",
        database="DB1",
        schema="S1",
        **auth,
    )


def main() -> int:
    port = int(sys.argv[1])
    report = {}
    with connect(port, password="not-checked") as conn:
        cur = conn.cursor()
        cur.execute(
            "CREATE OR REPLACE TABLE connector_nums AS SELECT SEQ4() AS n FROM TABLE(GENERATOR(ROWCOUNT => 10000))"
        )
        cur.execute("SELECT n FROM connector_nums ORDER BY n")
        rows = [r[0] for r in cur.fetchall()]
        report["rows"] = len(rows)
        report["in_order"] = rows == list(range(10000))
        cur.execute("SELECT SYSTEM$WAIT(1)")
        report["waited"] = cur.fetchone()[0]
    with connect(port, authenticator="PROGRAMMATIC_ACCESS_TOKEN", token="pat-good") as conn:
        report["pat"] = conn.cursor().execute("SELECT 1").fetchone()[0]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

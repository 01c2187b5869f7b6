"""`tradebus config show` redacts every secret, whichever way it entered the config."""

from __future__ import annotations

import json
import subprocess
import sys

from tradebus_common.cli.config_cmd import REDACTED, redact

CANARY = "canary-5ecret-42"


def test_redact_rules():
    tree = {
        "bus": {"url": f"nats://u:{CANARY}@h:4222", "creds_file": "/run/secrets/nats.creds"},
        "database": {"dsn": f"postgresql://tb:{CANARY}@db/tb", "dsn_env": "TRADEBUS_DATABASE_DSN"},
        "alerting": {
            "webhook": {"url": f"https://hooks.slack.com/services/T/B/{CANARY}"},
            "email": {"password": CANARY, "password_env": "TRADEBUS_SMTP_PASSWORD"},
        },
        "venues": {"binance": {"api_key": CANARY, "api_secret_file": "/run/secrets/k"}},
    }
    out = json.dumps(redact(tree))
    assert CANARY not in out
    shown = redact(tree)
    assert shown["bus"]["creds_file"] == "/run/secrets/nats.creds"  # where, not what
    assert shown["database"]["dsn"] == "postgresql://tb:***@db/tb"
    assert shown["alerting"]["webhook"]["url"] == REDACTED
    assert shown["alerting"]["email"]["password_env"] == "TRADEBUS_SMTP_PASSWORD"


def test_config_show_never_prints_a_secret_from_the_environment(tmp_path):
    env = {
        "TRADEBUS__ALERTING__WEBHOOK__URL": f"https://hooks.slack.com/services/{CANARY}",
        "TRADEBUS__DATABASE__DSN": f"postgresql://tb:{CANARY}@db/tb",
        "TRADEBUS__BUS__URL": f"nats://u:{CANARY}@nats:4222",
        "TRADEBUS_SMTP_PASSWORD": CANARY,
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-m", "tradebus_common.cli.main", "config", "show"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert CANARY not in out
    shown = json.loads(out)
    assert shown["alerting"]["webhook"]["url"] == REDACTED
    assert shown["alerting"]["email"]["password_env"] == "TRADEBUS_SMTP_PASSWORD"

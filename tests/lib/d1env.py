"""d1env: a throw-away wrangler project for end-to-end tests against local D1."""
import os

ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
WRANGLER = os.path.join(ROOT, "tools", "node_modules", ".bin", "wrangler")


def wrangler_project(directory, database="db"):
    """Make `directory` a wrangler project with one local D1 database; return its wrangler.toml path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "wrangler.toml")
    with open(path, "w") as f:
        f.write('name = "rs-test"\n[[d1_databases]]\nbinding = "DB"\ndatabase_name = "%s"\n'
                'database_id = "00000000-0000-0000-0000-000000000000"\n' % database)
    return path

"""Benchmark comparison suite: one harness, many method plugins, paper-style tables.

From Python: `suite.run_table`, `suite.compare`, `suite.read_table` (suite/api.py), each returning a `TableResult`
(its rows as a pandas DataFrame, its Markdown, cells and records); bad input raises `suite.SuiteError`.
Importing this package changes no global torch state (threads, cudnn flags); the CLI does that.
"""
__version__ = "0.1.0"

_API = ("run_table", "compare", "read_table", "run_budgets", "SuiteError", "TableResult", "BudgetResult")


def __getattr__(name: str):  # the API loads on first use: `import suite.plugins` stays light
    if name in _API:
        from suite import api

        return getattr(api, name)
    raise AttributeError(f"module 'suite' has no attribute {name!r}")


__all__ = list(_API)

"""A bare Flask "hello world": the framework's own ceiling under the same server and load.

gunicorn bench.hello:app
"""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello, World!"

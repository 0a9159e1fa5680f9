"""The design study's test app: Flask under uWSGI + gevent behind nginx.

Routes (the same on every contender of the benchmark):
  GET  /uwsgi/          HTML hello
  POST /qdp             the bridge's envelope {"funcNo": 2000, "userId", "data"} -> data
                        (scenario D: the same processes behind qdp's bridge and behind nginx)
  POST /api/<funcNo>    1000: JSON echo of the body
                        1002: the study's business call -- GET upstream A, then B
                              (requests), then insert a record (pymongo when
                              BENCH_MONGO_URL is set, else an in-process list)
Configuration comes from the environment (set by bench/lib/contenders.ts):
  BENCH_UPSTREAM_A, BENCH_UPSTREAM_B, BENCH_MONGO_URL
uWSGI runs it with --gevent N --gevent-monkey-patch, so requests/pymongo
sockets are cooperative.
"""
import os
import time

import requests
from flask import Flask, jsonify, request

app = Flask(__name__)

UPSTREAM_A = os.environ.get("BENCH_UPSTREAM_A", "")
UPSTREAM_B = os.environ.get("BENCH_UPSTREAM_B", "")
MONGO_URL = os.environ.get("BENCH_MONGO_URL", "")

# Plain `requests.get` per call (the simplest Flask + requests code). A process-wide requests.Session shared
# by 1,000 greenlets fails here with urllib3 "Pool is closed" under load (pool races), so no pool.
_records = None
_memory_records = []
if MONGO_URL:
    import pymongo

    _records = pymongo.MongoClient(MONGO_URL, maxPoolSize=2000)["qdp_bench"]["records"]


@app.route("/uwsgi/")
def hello():
    return "<html><body><h1>Hello from Flask</h1></body></html>"


def _quote(user, data):
    symbol = str((data or {}).get("symbol", ""))
    a = requests.get(UPSTREAM_A, params={"symbol": symbol}, timeout=30).json()
    b = requests.get(UPSTREAM_B, params={"symbol": symbol}, timeout=30).json()
    record = {"user": user, "symbol": symbol, "a": a, "b": b, "at": time.time()}
    if _records is not None:
        record_id = str(_records.insert_one(record).inserted_id)
    else:
        _memory_records.append(record)
        if len(_memory_records) > 10000:
            del _memory_records[:5000]
        record_id = str(len(_memory_records))
    return {"symbol": symbol, "a": a, "b": b, "recordId": record_id}


@app.route("/api/<int:func_no>", methods=["POST"])
def api(func_no):
    data = request.get_json(force=True, silent=True)
    if func_no == 1000:
        result = data
    elif func_no == 1002:
        try:
            result = _quote(request.headers.get("X-QDP-User", ""), data)
        except Exception as exc:  # the study's app answered 502 on upstream trouble
            return jsonify({"ok": False, "error": {"code": "UPSTREAM_ERROR", "message": str(exc)}}), 502
    else:
        return jsonify({"ok": False, "error": {"code": "UNKNOWN_FUNCTION", "message": "unknown"}}), 404
    return jsonify({"ok": True, "funcNo": func_no, "data": result})


@app.route("/qdp", methods=["POST"])
def qdp_envelope():
    """Scenario D: an existing service as the bridge (or nginx) calls it -- the envelope
    {"funcNo", "userId", "data"} in, the function's result out (2000 = echo of data)."""
    envelope = request.get_json(force=True, silent=True)
    if not isinstance(envelope, dict) or envelope.get("funcNo") != 2000:
        return jsonify({"error": "unknown function"}), 404
    return jsonify(envelope.get("data"))


application = app

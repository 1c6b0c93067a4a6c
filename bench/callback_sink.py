"""A callback receiver that takes everything: 200 to any POST, counting the answers it carried (a
Meta webhook's `entry` items, else one per body); GET /count says how many so far.

Run as its own process (`python -m bench.callback_sink PORT`) so its CPU is apart from the
process measured. A raw ASGI app, as cheap as the receiving end can be.
"""

import json
import sys

import uvicorn

COUNT = {"answers": 0, "posts": 0}


async def _body(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        data = json.loads(await _body(receive))
        entries = data.get("entry") if isinstance(data, dict) else None
        COUNT["answers"] += len(entries) if isinstance(entries, list) else 1
        COUNT["posts"] += 1
        payload = b'{"status":"accepted"}'
    else:
        payload = json.dumps(COUNT).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)

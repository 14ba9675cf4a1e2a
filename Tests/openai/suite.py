#!/usr/bin/env python3
"""berthd's OpenAI routes driven by the official `openai` SDK, over the UNIX socket and over
the `[openai] listen` address with API keys. Run by Tests/EndToEndTests/OpenAITests.swift, which
starts the daemon, makes the reservations and keys, and passes them in a JSON file:

    suite.py SETUP.json

Prints one JSON line per check: {"check", "transport", "ok", "detail"}. It never stops at a
failed check, so that one run reports them all.
"""
import json
import sqlite3
import sys
import time
import traceback

import openai

try:  # openai 3 is built on httpx2; earlier versions on httpx, with the same API.
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

setup = json.load(open(sys.argv[1]))


def client(transport, key=None, retries=0):
    """An SDK client of berthd: over the socket (the caller is whoever runs this) or over TCP."""
    if transport == "socket":
        return openai.OpenAI(
            base_url="http://localhost/openai/v1",
            api_key="unused",  # the socket names the caller; the SDK insists on a key
            http_client=httpx.Client(transport=httpx.HTTPTransport(uds=setup["socket"])),
            max_retries=retries,
        )
    return openai.OpenAI(base_url=setup["tcp"] + "/openai/v1", api_key=key or setup["keys"]["root"], max_retries=retries)


def ledger(sql, *arguments):
    """Rows of the daemon's ledger, read as it stands (berthd commits a call before answering)."""
    with sqlite3.connect("file:%s?mode=ro" % setup["ledger"], uri=True) as db:
        return db.execute(sql, arguments).fetchall()


def last_call(reservation):
    rows = ledger(
        "SELECT i.outcome, i.input_tokens, i.output_tokens, i.tier FROM invocations i JOIN reservations r ON r.id = i.reservation_id "
        "WHERE r.name = ? ORDER BY i.id DESC LIMIT 1",
        reservation,
    )
    return rows[0] if rows else None


results = []


def check(name, transport):
    def wrap(body):
        try:
            detail = body(transport)
            results.append({"check": name, "transport": transport, "ok": True, "detail": detail or ""})
        except Exception:  # every failure is reported, with where it happened
            results.append({"check": name, "transport": transport, "ok": False, "detail": traceback.format_exc()})
        print(json.dumps(results[-1]), flush=True)
    return wrap


def completion_and_chat(transport):
    c = client(transport)
    r = setup["reservation"]
    text = c.completions.create(model=r, prompt="The harbour master", max_tokens=8)
    assert text.object == "text_completion", text
    assert text.model == r, text.model
    assert text.choices[0].text, text
    assert text.usage.completion_tokens > 0 and text.usage.prompt_tokens > 0, text.usage
    assert last_call(r)[0:3] == ("served", text.usage.prompt_tokens, text.usage.completion_tokens), (last_call(r), text.usage)
    chat = c.chat.completions.create(model=r, messages=[{"role": "user", "content": "What does the ledger keep?"}], max_tokens=8)
    assert chat.object == "chat.completion", chat
    assert chat.choices[0].message.role == "assistant" and chat.choices[0].message.content, chat
    assert last_call(r)[0:3] == ("served", chat.usage.prompt_tokens, chat.usage.completion_tokens), (last_call(r), chat.usage)
    # The raw answer says how berth served it.
    raw = c.completions.with_raw_response.create(model=r, prompt="The harbour", max_tokens=4)
    assert raw.headers["berth-served-by"] == "provisioned" and raw.headers["berth-reservation"] == r, dict(raw.headers)
    return "%r / %r" % (text.choices[0].text, chat.choices[0].message.content)


def streamed_chat(transport):
    c = client(transport)
    r = setup["reservation"]
    stream = c.chat.completions.create(
        model=r,
        messages=[{"role": "user", "content": "The harbour"}],
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage, finish = [], None, None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk" and chunk.model == r, chunk
        if chunk.usage is not None:
            assert chunk.choices == [], chunk
            usage = chunk.usage
            continue
        delta = chunk.choices[0].delta
        if delta.content:
            pieces.append(delta.content)
        finish = chunk.choices[0].finish_reason or finish
    # One chunk per token, as the serve process wrote them, not the whole text at once.
    assert len(pieces) >= 2, pieces
    assert all(len(piece.split()) <= 1 for piece in pieces), pieces
    assert finish in ("stop", "length"), finish
    assert usage is not None and usage.completion_tokens == len(pieces), (usage, pieces)
    recorded = last_call(r)
    assert recorded[0:3] == ("served", usage.prompt_tokens, usage.completion_tokens), (recorded, usage)
    # Without include_usage, no usage chunk.
    plain = list(c.completions.create(model=r, prompt="The harbour", max_tokens=6, stream=True))
    assert plain and all(chunk.usage is None for chunk in plain), plain
    return "%d chunks: %r, usage %s" % (len(pieces), "".join(pieces), usage)


def stream_is_the_answer(transport):
    """The serve process streams the answer it would give whole: the same text a token at a
    time, with stop strings and seeds passed on by berthd."""
    c = client(transport)
    r = setup["reservation"]
    compared = []
    for stop, chat in [(None, False), ("the", False), (None, True), (".", True)]:
        extra = {"seed": 3, "max_tokens": 20}
        if stop:
            extra["stop"] = stop
        if chat:
            messages = [{"role": "user", "content": "The harbour"}]
            whole = c.chat.completions.create(model=r, messages=messages, **extra)
            text, finish = whole.choices[0].message.content, whole.choices[0].finish_reason
            chunks = list(c.chat.completions.create(model=r, messages=messages, stream=True, **extra))
            pieces = [k.choices[0].delta.content for k in chunks if k.choices and k.choices[0].delta.content]
        else:
            whole = c.completions.create(model=r, prompt="The harbour", **extra)
            text, finish = whole.choices[0].text, whole.choices[0].finish_reason
            chunks = list(c.completions.create(model=r, prompt="The harbour", stream=True, **extra))
            pieces = [k.choices[0].text for k in chunks if k.choices and k.choices[0].text]
        finishes = [k.choices[0].finish_reason for k in chunks if k.choices and k.choices[0].finish_reason]
        assert "".join(pieces) == text, (stop, chat, pieces, text)
        assert finishes == [finish], (stop, chat, finishes, finish)
        assert stop is not None or len(pieces) == whole.usage.completion_tokens, (pieces, whole.usage)
        compared.append("%r" % text)
    return ", ".join(compared)


def custom_on_demand(transport):
    c = client(transport)
    try:
        c.completions.create(model=setup["custom_model"], prompt="The harbour", max_tokens=4)
    except openai.BadRequestError as error:
        body = error.body if isinstance(error.body, dict) else {}
        assert error.status_code == 400, error.status_code
        assert body.get("code") == "on-demand-not-supported", body
        assert "berth reserve NAME --model %s" % setup["custom_model"] in str(error), str(error)
        assert "--purpose inference" in str(error), str(error)
        return str(error)
    raise AssertionError("a custom model was served on demand")


def burst(transport):
    tiny = setup["tiny"][transport]
    c = client(transport)
    throttled = None
    for _ in range(40):
        try:
            c.completions.create(model=tiny, prompt="The harbour", max_tokens=3)
        except openai.RateLimitError as error:
            throttled = error
            break
    assert throttled is not None, "40 calls of 5 tokens on a 60-token budget were all served"
    retry_after = throttled.response.headers.get("retry-after")
    assert retry_after and int(retry_after) >= 1, dict(throttled.response.headers)
    assert throttled.body.get("code") == "throttled", throttled.body
    assert "berth update %s --units N" % tiny in str(throttled), str(throttled)
    assert last_call(tiny)[0] == "throttled", last_call(tiny)
    # The SDK's own retries wait for Retry-After and get through.
    served = client(transport, retries=6).completions.create(model=tiny, prompt="The harbour", max_tokens=3)
    assert served.choices[0].text is not None
    assert last_call(tiny)[0] == "served", last_call(tiny)
    return "throttled with retry-after %s, then served after the SDK's retries" % retry_after


def cancelled_mid_stream(transport):
    slow = setup["slow"]
    before = ledger(
        "SELECT COUNT(*) FROM invocations i JOIN reservations r ON r.id = i.reservation_id WHERE r.name = ? AND outcome = 'cancelled'", slow
    )[0][0]
    c = client(transport)
    stream = c.chat.completions.create(model=slow, messages=[{"role": "user", "content": "count"}], stream=True)
    received = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
        if received == 3:
            break
    stream.close()  # the client goes away mid-stream
    c.close()
    deadline = time.time() + 20
    while time.time() < deadline:
        rows = ledger(
            "SELECT i.outcome, i.output_tokens FROM invocations i JOIN reservations r ON r.id = i.reservation_id "
            "WHERE r.name = ? AND outcome = 'cancelled' ORDER BY i.id",
            slow,
        )
        if len(rows) > before:
            tokens = rows[-1][1]
            # What was sent to it: at least what it read, not the 64 the whole stream would have had.
            assert received <= tokens < 64, (received, tokens)
            return "cancelled after %d tokens read, %d recorded" % (received, tokens)
        time.sleep(0.1)
    raise AssertionError("no cancelled record for %s after the client left" % slow)


def models(transport):
    listed = [m.id for m in client(transport).models.list()]
    assert setup["reservation"] in listed, listed
    assert "amazon.nova-micro-v1:0" in listed, listed
    assert setup["custom_model"] not in listed, listed
    if transport == "tcp":
        theirs = [m.id for m in client("tcp", key=setup["keys"]["nobody"]).models.list()]
        assert setup["reservation"] not in theirs and setup["nobody_reservation"] in theirs, theirs
    return ", ".join(listed)


def image_to_text_model(transport):
    pixel = "iVBORw0KGgo="
    try:
        client(transport).chat.completions.create(
            model=setup["reservation"],
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "describe this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + pixel}},
            ]}],
        )
    except openai.BadRequestError as error:
        assert error.body.get("code") == "unsupported-modality", error.body
        return str(error)
    raise AssertionError("an image went to a text-only model")


def only_openai_routes(transport):
    key = {"Authorization": "Bearer " + setup["keys"]["root"]}
    with httpx.Client(base_url=setup["tcp"]) as http:
        for path in ["/v1/health", "/v1/reservations", "/metrics", "/openai/v1/nothing"]:
            answer = http.get(path, headers=key)
            assert answer.status_code == 404, (path, answer.status_code, answer.text)
            assert answer.json()["error"]["code"] == "not-found", answer.text
        assert http.post("/v1/reservations", headers=key, json={"name": "x"}).status_code == 404
        assert http.get("/openai/v1/models").status_code == 401
    return "the control API is not on the TCP address"


def revoked_key(transport):
    try:
        client("tcp", key=setup["keys"]["revoked"]).completions.create(model=setup["reservation"], prompt="x", max_tokens=2)
    except openai.AuthenticationError as error:
        assert error.status_code == 401
        return str(error)
    raise AssertionError("a revoked key was let in")


def wrong_keys(transport):
    for key in ["berth_1_" + "0" * 64, "not-a-key", setup["keys"]["root"][:-1] + "x"]:
        try:
            client("tcp", key=key).models.list()
        except openai.AuthenticationError:
            continue
        raise AssertionError("a wrong key was let in: %s" % key)
    return "3 wrong keys refused"


def other_users_key(transport):
    c = client("tcp", key=setup["keys"]["nobody"])
    try:
        c.completions.create(model=setup["reservation"], prompt="The harbour", max_tokens=2)
    except openai.PermissionDeniedError as error:
        assert error.status_code == 403
        # Their own reservation works with the same key.
        own = c.completions.create(model=setup["nobody_reservation"], prompt="The harbour", max_tokens=2)
        assert own.choices[0].text is not None
        return str(error)
    raise AssertionError("nobody's key called root's reservation")


for transport in ["socket", "tcp"]:
    check("completion and chat completion", transport)(completion_and_chat)
    check("streamed chat completion", transport)(streamed_chat)
    check("a stream is the whole answer a token at a time", transport)(stream_is_the_answer)
    check("custom model on demand", transport)(custom_on_demand)
    check("burst over budget", transport)(burst)
    check("client leaves mid-stream", transport)(cancelled_mid_stream)
    check("models", transport)(models)
    check("image to a text-only model", transport)(image_to_text_model)
check("only the OpenAI routes", "tcp")(only_openai_routes)
check("revoked key", "tcp")(revoked_key)
check("wrong keys", "tcp")(wrong_keys)
check("another user's key", "tcp")(other_users_key)

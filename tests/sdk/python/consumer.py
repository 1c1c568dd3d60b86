"""The Python consumer test: code that depends on the `courier-proto` wheel, as a user's would, calls
every RPC kind of courier-server through the official Python gRPC runtime (grpcio), a client we did
not write, over TLS with a bearer token, and checks the exact answers, headers and trailers.

Run by `make python-consumer` (make/python.mk, part of `make test`) with the Python of a fresh
virtualenv into which pip installed target/sdk's wheel and, from PyPI, the protobuf and grpcio it
depends on; against a throwaway server (crates/courier-server/with-demo-server sets COURIER_ADDR,
COURIER_CA and COURIER_TOKENS_DIR). Each check prints what it saw; the script exits non-zero at the
first wrong answer and ends with a count of the checks that passed.
"""

import os
import re
import sys
import sysconfig
import threading
import uuid

import grpc
from google.protobuf import __version__ as protobuf_version
from google.protobuf import duration_pb2, json_format

from courier.chat.v1 import chat_pb2, chat_pb2_grpc
from courier.hello.v1 import hello_pb2, hello_pb2_grpc
from courier.message.v1 import message_pb2, message_pb2_grpc

ADDR = os.environ["COURIER_ADDR"]
TOKENS = os.environ["COURIER_TOKENS_DIR"]
with open(os.environ["COURIER_CA"], "rb") as ca:
    CREDENTIALS = grpc.ssl_channel_credentials(root_certificates=ca.read())

PASSED = 0


def check(what, ok, detail):
    global PASSED
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}", flush=True)
    if not ok:
        print(f"python-consumer: {PASSED} passed, 1 failed")
        sys.exit(1)
    PASSED += 1


def token(user):
    with open(os.path.join(TOKENS, f"{user}.token")) as file:
        return [("authorization", f"Bearer {file.read().strip()}")]


def channel(**options):
    return grpc.secure_channel(ADDR, CREDENTIALS, options=list(options.items()))


def the_modules_come_from_the_installed_wheel():
    """Not from the repository's gen/python: the test proves the package, not the work tree."""
    site = os.path.realpath(sysconfig.get_paths()["purelib"])
    modules = [hello_pb2, hello_pb2_grpc, message_pb2, message_pb2_grpc, chat_pb2, chat_pb2_grpc]
    outside = [m.__name__ for m in modules if not os.path.realpath(m.__file__).startswith(site + os.sep)]
    check("imported from the installed wheel", not outside, outside or site)
    print(f"     grpcio {grpc.__version__}, protobuf {protobuf_version}, Python {sys.version.split()[0]}")


def unary_hello():
    hello = hello_pb2_grpc.SayHelloServiceStub(channel())
    response, call = hello.Hello.with_call(
        hello_pb2.HelloRequest(name="python"),
        metadata=token("jack")
        + [("x-request-id", "py-consumer-1"), ("x-echo-note", "from python"), ("x-echo-blob-bin", b"\x00\x01\xff")],
    )
    check("unary Hello", response.msg == "hello world! python", repr(response.msg))
    headers = dict(call.initial_metadata())
    echoed = (headers.get("x-request-id"), headers.get("x-echo-note"), headers.get("x-echo-blob-bin"))
    check("Hello's headers echo the metadata, text and binary", echoed == ("py-consumer-1", "from python", b"\x00\x01\xff"), echoed)


def a_call_without_a_token_is_unauthenticated():
    hello = hello_pb2_grpc.SayHelloServiceStub(channel())
    try:
        hello.Hello(hello_pb2.HelloRequest(name="nobody"))
        check("Hello without a token", False, "answered OK")
    except grpc.RpcError as error:
        check("Hello without a token", error.code() == grpc.StatusCode.UNAUTHENTICATED, error.code())


def send_then_receive():
    """Client streaming SendMessage counts; server streaming ReceiveMessage delivers them in order.

    Runs first on a fresh server (with-demo-server), so mike's queue holds exactly these three."""
    texts = [f"message {n} from python" for n in ("one", "two", "three")]
    messages = message_pb2_grpc.MessageServiceStub(channel())
    requests = (
        message_pb2.SendMessageRequest(message=message_pb2.Message(**{"from": "jack"}, to="mike", content=text))
        for text in texts
    )
    sent = messages.SendMessage(requests, metadata=token("jack"))
    check("client streaming SendMessage", sent.count == 3, f"count {sent.count}")

    stream = messages.ReceiveMessage(
        message_pb2.ReceiveMessageRequest(user="mike", idle_timeout=duration_pb2.Duration(seconds=1)),
        metadata=token("mike"),
    )
    received = [response.message for response in stream]
    got = [(getattr(m, "from"), m.to, m.content) for m in received]
    check("server streaming ReceiveMessage, in order", got == [("jack", "mike", text) for text in texts], got)
    ids = {m.id for m in received}
    check("three distinct ids, sent_at assigned", len(ids) == 3 and "" not in ids and all(m.HasField("sent_at") for m in received), sorted(ids))
    # The proto3 JSON of a delivered message, through the package's classes: sentAt ends in Z.
    stamps = [json_format.MessageToDict(m)["sentAt"] for m in received]
    canonical = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$")
    check("sentAt in proto3 JSON ends in Z", all(canonical.match(s) for s in stamps), stamps[0])
    trailers = dict(stream.trailing_metadata())
    check("ReceiveMessage's trailer x-message-count", trailers.get("x-message-count") == "3", trailers.get("x-message-count"))


def bidi_chat():
    """Chat relays one line each way and ends cleanly: each side sends one line, then half-closes
    once the peer's line has arrived."""

    def chat(user, peer, results):
        arrived = threading.Event()

        def requests():
            yield chat_pb2.ChatRequest(
                message=message_pb2.Message(**{"from": user}, to=peer, content=f"{user} to {peer}")
            )
            arrived.wait(timeout=10)

        calls = chat_pb2_grpc.ChatServiceStub(channel())
        stream = calls.Chat(requests(), metadata=token(user), timeout=20)
        got = []
        try:
            for response in stream:
                got.append((getattr(response.message, "from"), response.message.to, response.message.content))
                arrived.set()
            results[user] = (got, dict(stream.trailing_metadata()).get("x-message-count"), None)
        except grpc.RpcError as error:
            arrived.set()
            results[user] = (got, None, f"{error.code()} {error.details()}")

    results = {}
    threads = [threading.Thread(target=chat, args=pair + (results,)) for pair in (("jack", "mike"), ("mike", "jack"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check("bidi Chat: jack gets mike's line", results["jack"] == ([("mike", "jack", "mike to jack")], "1", None), results["jack"])
    check("bidi Chat: mike gets jack's line", results["mike"] == ([("jack", "mike", "jack to mike")], "1", None), results["mike"])


def resume_after_a_cancel(run):
    """mike reads 10 of 1,000, cancels, and resumes after the 10th: the other 990, once, in order."""
    messages = message_pb2_grpc.MessageServiceStub(channel())
    tag = f"{run}-{uuid.uuid4().hex[:8]}"
    sends = (
        message_pb2.SendMessageRequest(
            message=message_pb2.Message(**{"from": "jack"}, to="mike", content=f"{tag} {n}")
        )
        for n in range(1000)
    )
    count = messages.SendMessage(sends, metadata=token("jack")).count
    check(f"run {run}: jack sends 1,000", count == 1000, f"count {count}")
    stream = messages.ReceiveMessage(message_pb2.ReceiveMessageRequest(user="mike"), metadata=token("mike"))
    first = []
    for response in stream:
        first.append(response.message)
        if len(first) == 10:
            stream.cancel()
            break
    expected_first = [f"{tag} {n}" for n in range(10)]
    check(f"run {run}: the first 10 in order", [m.content for m in first] == expected_first, first[-1].content)
    resumed = messages.ReceiveMessage(
        message_pb2.ReceiveMessageRequest(
            user="mike", after_id=first[-1].id, idle_timeout=duration_pb2.Duration(seconds=1)
        ),
        metadata=token("mike"),
    )
    rest = [response.message.content for response in resumed]
    expected = [f"{tag} {n}" for n in range(10, 1000)]
    duplicates = len(rest) - len(set(rest))
    check(
        f"run {run}: resumed after the 10th",
        rest == expected,
        f"{len(rest)} messages, {duplicates} duplicates, in order: {rest == sorted(rest, key=lambda c: int(c.split()[1]))}",
    )


def oversized_request_is_resource_exhausted():
    """grpc-go, grpc-java and C-core answer RESOURCE_EXHAUSTED; clients' retry policies rely on it."""
    hello = hello_pb2_grpc.SayHelloServiceStub(channel(**{"grpc.max_send_message_length": 64 << 20}))
    try:
        hello.Hello(hello_pb2.HelloRequest(name="x" * (5 << 20)), metadata=token("jack"))
        check("oversized Hello", False, "answered OK")
    except grpc.RpcError as error:
        check("oversized Hello", error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{error.code()} {error.details()[:60]}")


def main():
    the_modules_come_from_the_installed_wheel()
    unary_hello()
    a_call_without_a_token_is_unauthenticated()
    send_then_receive()
    bidi_chat()
    for run in range(5):
        resume_after_a_cancel(run)
    oversized_request_is_resource_exhausted()
    print(f"python-consumer: {PASSED} passed, 0 failed")


if __name__ == "__main__":
    main()

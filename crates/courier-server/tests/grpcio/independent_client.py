"""Courier checked by a client we did not write: the official Python gRPC runtime (grpcio).

Run by `make grpcio` (part of `make test`) against a throwaway server with TLS and token auth
(crates/courier-server/with-demo-server sets COURIER_ADDR, COURIER_CA, COURIER_TOKENS_DIR), with
stubs generated from proto/ by grpcio-tools into GRPCIO_STUBS. Each check prints what it saw and
the script exits non-zero at the first wrong answer.
"""

import os
import sys
import uuid

import grpc

sys.path.insert(0, os.environ["GRPCIO_STUBS"])

from google.protobuf import duration_pb2  # noqa: E402

from courier.hello.v1 import hello_pb2, hello_pb2_grpc  # noqa: E402
from courier.message.v1 import message_pb2, message_pb2_grpc  # noqa: E402

ADDR = os.environ["COURIER_ADDR"]
TOKENS = os.environ["COURIER_TOKENS_DIR"]
with open(os.environ["COURIER_CA"], "rb") as ca:
    CREDENTIALS = grpc.ssl_channel_credentials(root_certificates=ca.read())


def token(user):
    with open(os.path.join(TOKENS, f"{user}.token")) as file:
        return [("authorization", f"Bearer {file.read().strip()}")]


def channel(**options):
    return grpc.secure_channel(ADDR, CREDENTIALS, options=list(options.items()))


def check(what, ok, detail):
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")
    if not ok:
        sys.exit(1)


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
    for run in range(5):
        resume_after_a_cancel(run)
    oversized_request_is_resource_exhausted()
    print("grpcio: every check passed")


if __name__ == "__main__":
    main()

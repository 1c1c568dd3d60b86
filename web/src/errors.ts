// Errors in words: what went wrong, for a person, with the gRPC code for whoever reads logs.

import { Code, ConnectError } from "@connectrpc/connect";

/** The gRPC name of `code`: `UNAUTHENTICATED`, `PERMISSION_DENIED`, ... */
export function codeName(code: Code): string {
  return (Code[code] ?? `code ${code}`).replace(/(?<=[a-z])(?=[A-Z])/g, "_").toUpperCase();
}

/**
 * Whether `error` means the server could not be reached at all: the browser's fetch failed
 * (connection refused, TLS refused, network down) or the connection broke mid-answer, so no
 * gRPC status came back.
 */
export function unreachable(error: ConnectError): boolean {
  return (
    (error.code === Code.Unknown || error.code === Code.Unavailable || error.code === Code.Internal) &&
    (error.cause instanceof TypeError || /fetch|network|missing trailer/i.test(error.rawMessage))
  );
}

/** Whether trying again may give another answer: the server was away, busy or slow. */
export function transient(error: ConnectError): boolean {
  switch (error.code) {
    case Code.Unavailable:
    case Code.Unknown:
    case Code.DeadlineExceeded:
    case Code.ResourceExhausted:
    case Code.Aborted:
    case Code.Internal:
      return true;
    default:
      return false;
  }
}

/** `error` in words, for `user` signed in to `origin`. */
export function describe(error: ConnectError, user: string, origin: string): string {
  const said = error.rawMessage ? `: ${error.rawMessage}` : "";
  if (unreachable(error)) {
    return `The server at ${origin} cannot be reached (${error.rawMessage || "no answer"}).`;
  }
  switch (error.code) {
    case Code.Unauthenticated:
      return (
        `The server refused the token for ${user} (UNAUTHENTICATED${said}). ` +
        `Check the token, and that ${user} is a user of this server.`
      );
    case Code.PermissionDenied:
      return (
        `This token is not ${user}'s (PERMISSION_DENIED${said}). ` +
        "Sign in as the user the token was made for."
      );
    case Code.InvalidArgument:
      return `The server refused the request (INVALID_ARGUMENT${said}).`;
    case Code.FailedPrecondition:
      return `The server refused the request (FAILED_PRECONDITION${said}).`;
    case Code.ResourceExhausted:
      return `The server is busy or a limit was reached (RESOURCE_EXHAUSTED${said}).`;
    case Code.Unavailable:
      return `The server is unavailable (UNAVAILABLE${said}).`;
    case Code.DeadlineExceeded:
      return `The server did not answer in time (DEADLINE_EXCEEDED${said}).`;
    default:
      return `The call failed (${codeName(error.code)}${said}).`;
  }
}

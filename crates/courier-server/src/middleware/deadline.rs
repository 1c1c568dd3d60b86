//! A check of the client's deadline: a malformed `grpc-timeout` is refused with
//! INVALID_ARGUMENT instead of being ignored.

use http::{Request, Response};
use tonic::Status;
use tower_http::validate_request::ValidateRequest;

/// Refuses a malformed `grpc-timeout`, which tonic would otherwise ignore silently: the client
/// meant a deadline, and should learn that it has none.
#[derive(Clone, Copy, Debug, Default)]
pub struct WellFormedDeadline;

/// Whether `value` is a gRPC timeout: 1 to 8 digits and a unit (H, M, S, m, u, n).
fn is_grpc_timeout(value: &[u8]) -> bool {
    match value.split_last() {
        Some((unit, digits)) => {
            b"HMSmun".contains(unit)
                && (1..=8).contains(&digits.len())
                && digits.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

impl<B> ValidateRequest<B> for WellFormedDeadline {
    type ResponseBody = tonic::body::Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<Self::ResponseBody>> {
        match request.headers().get("grpc-timeout") {
            Some(value) if !is_grpc_timeout(value.as_bytes()) => {
                let status = Status::invalid_argument(
                    "grpc-timeout: expected 1 to 8 digits and a unit (H, M, S, m, u, n)",
                );
                Err(status.into_http())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_digits_and_a_unit() {
        for good in ["1S", "100m", "99999999n", "5H"] {
            assert!(is_grpc_timeout(good.as_bytes()), "{good}");
        }
        for bad in ["", "S", "soon", "123456789S", "10s", "1.5S", "-1S"] {
            assert!(!is_grpc_timeout(bad.as_bytes()), "{bad}");
        }
    }
}

//! `courier.hello.v1.SayHelloService`: answers `hello world! <name>`.

use tonic::{Request, Response, Status};

use super::Courier;
use super::convert::{self, request_id, respond};
use crate::pb::hello::say_hello_service_server::SayHelloService;
use crate::pb::hello::{HelloRequest, HelloResponse};

#[tonic::async_trait]
impl SayHelloService for Courier {
    async fn hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        let name = convert::hello_name(&request.get_ref().name)
            .map_err(|error| error.into_status(&request_id(request.metadata())))?;
        let msg = format!("hello world! {name}");
        Ok(respond(request.metadata(), HelloResponse { msg }))
    }
}

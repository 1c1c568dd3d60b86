//! A user of the published `courier-proto` crate (only its `courier-hello-v1` feature) calls
//! Hello on a courier-server over TLS with a bearer token, and checks the exact answer.
//!
//! Reads COURIER_ADDR (host:port), COURIER_CA (PEM file) and COURIER_TOKENS_DIR (holding
//! `jack.token`), as `with-demo-server` sets them.

use courier_proto::courier::hello::v1::HelloRequest;
use courier_proto::courier::hello::v1::say_hello_service_client::SayHelloServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

type Error = Box<dyn std::error::Error>;

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|error| format!("{name}: {error}").into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let ca = std::fs::read(env("COURIER_CA")?)?;
    let token = std::fs::read_to_string(format!("{}/jack.token", env("COURIER_TOKENS_DIR")?))?;
    let authorization: MetadataValue<_> = format!("Bearer {}", token.trim()).parse()?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{}", env("COURIER_ADDR")?))?
        .tls_config(tls)?
        .connect()
        .await?;
    let mut client = SayHelloServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
        request.metadata_mut().insert("authorization", authorization.clone());
        Ok(request)
    });
    let reply = client
        .hello(HelloRequest { name: "jack".into() })
        .await?
        .into_inner();
    if reply.msg != "hello world! jack" {
        return Err(format!("Hello answered {:?}, not \"hello world! jack\"", reply.msg).into());
    }
    println!("courier-proto consumer: Hello answered {:?}", reply.msg);
    Ok(())
}

//! Health and reflection through a real server, with tonic's own clients (grpcurl, which speaks only reflection
//! v1alpha, is driven in `clients.rs`).

mod common;

use common::TestServer;
use tokio_stream::StreamExt as _;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tonic_reflection::pb::{v1, v1alpha};

#[tokio::test]
async fn health_is_serving_for_the_server_and_the_alert_service() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "alertstream.v1.AlertService"] {
        let response = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "nope".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn health_turns_not_serving_when_drain_begins() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel().await);
    let mut watch = health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().status(), ServingStatus::Serving);
    server.drain.cancel();
    assert_eq!(watch.next().await.unwrap().unwrap().status(), ServingStatus::NotServing);
}

#[tokio::test]
async fn reflection_v1_lists_the_services() {
    let server = TestServer::start().await;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut responses = client.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = response.message_response
    else {
        panic!("a list of services: {response:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "alertstream.v1.AlertService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
    );
}

#[tokio::test]
async fn reflection_v1alpha_describes_the_alert_service_with_its_imports() {
    let server = TestServer::start().await;
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    // A client asks for the file that defines the service, then for each import by name.
    let ask = |request| v1alpha::ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let requests = vec![
        ask(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            "alertstream.v1.AlertService".into(),
        )),
        ask(v1alpha::server_reflection_request::MessageRequest::FileByFilename(
            "google/protobuf/timestamp.proto".into(),
        )),
    ];
    let mut responses = client.server_reflection_info(tokio_stream::iter(requests)).await.unwrap().into_inner();
    let mut files = Vec::new();
    for _ in 0..2 {
        let response = responses.next().await.unwrap().unwrap();
        let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(found)) =
            response.message_response
        else {
            panic!("a file descriptor: {response:?}");
        };
        use prost::Message as _;
        for bytes in found.file_descriptor_proto {
            files.push(prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap());
        }
    }
    let names: Vec<&str> = files.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["alertstream/v1/alertstream.proto", "google/protobuf/timestamp.proto"]);
    let methods: Vec<&str> = files[0].service[0].method.iter().map(|m| m.name()).collect();
    assert_eq!(methods, ["Stream", "Evaluate", "ListRules"]);
}

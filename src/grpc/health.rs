//! `grpc.health.v1` and server reflection, for any of iamlet's gRPC servers.
//!
//! Health follows a `watch` channel of the process's readiness: `Check` reads it, `Watch`
//! streams its changes, so a probe sees a change the moment the process makes it.

use std::pin::Pin;

use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// `grpc.health.v1.Health` over a readiness channel, for a fixed set of services (`""`, the
/// server as a whole, is always one).
#[derive(Debug, Clone)]
pub struct HealthService {
    services: &'static [&'static str],
    serving: watch::Receiver<bool>,
}

impl HealthService {
    /// Reports `services` SERVING while `serving` holds true, NOT_SERVING otherwise.
    pub fn new(services: &'static [&'static str], serving: watch::Receiver<bool>) -> Self {
        Self { services, serving }
    }

    /// The tonic server.
    pub fn into_server(self) -> HealthServer<Self> {
        HealthServer::new(self)
    }

    fn known(&self, service: &str) -> Result<(), Status> {
        if service.is_empty() || self.services.contains(&service) {
            Ok(())
        } else {
            Err(Status::not_found("service not registered"))
        }
    }
}

fn response(serving: bool) -> HealthCheckResponse {
    HealthCheckResponse {
        status: if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        } as i32,
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.known(&request.get_ref().service)?;
        Ok(Response::new(response(*self.serving.borrow())))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.known(&request.get_ref().service)?;
        let changes = tokio_stream::wrappers::WatchStream::new(self.serving.clone());
        Ok(Response::new(Box::pin(
            changes.map(|serving| Ok(response(serving))),
        )))
    }
}

/// Server reflection, v1 and v1alpha (grpcurl speaks the latter), advertising exactly
/// `services` (and health and reflection themselves).
pub fn reflection(
    services: &[&str],
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection");
        for service in services {
            builder = builder.with_service_name(*service);
        }
        builder
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

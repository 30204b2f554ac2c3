//! `Peer`: servers over one PostgreSQL store forward a command batch to the server holding its
//! domain's lease (see `ledger/cluster.rs` for why forwarding and not taking over). The server
//! side runs the batch with [`Ledger::execute_forwarded`]; the client side is the ledger's
//! [`Forwarder`]. Both ends authenticate with the store's shared secret; the user was already
//! authorized by the first server, whose actor name travels in each request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::pb::{self, peer_client::PeerClient};
use crate::ledger::{
    BatchMode, BatchOutcome, Forwarder, Ledger, LedgerError, Request as LedgerRequest,
};

/// Metadata carrying the shared secret (hex).
const SECRET_HEADER: &str = "x-ledger-peer";
/// A forwarded import job can be large (a 1M-row job is some hundreds of MB).
const MAX_MESSAGE: usize = 1 << 30;

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, crate::store::codec::config()).map_err(|e| e.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    bincode::serde::decode_from_slice(bytes, crate::store::codec::config())
        .map(|(v, _)| v)
        .map_err(|e| e.to_string())
}

pub struct PeerService {
    ledger: Ledger,
}

/// The shared-secret check, run on a call's metadata before its body is read: a caller
/// without the secret must not make the server take in a message of up to [`MAX_MESSAGE`].
#[derive(Clone)]
pub struct PeerSecretCheck {
    secret: String,
}

impl tonic::service::Interceptor for PeerSecretCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let given = request
            .metadata()
            .get(SECRET_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !super::auth::constant_time_eq(given.as_bytes(), self.secret.as_bytes()) {
            return Err(Status::unauthenticated(
                "Peer is for servers of the same store only",
            ));
        }
        Ok(request)
    }
}

pub type PeerServer = tonic::service::interceptor::InterceptedService<
    pb::peer_server::PeerServer<PeerService>,
    PeerSecretCheck,
>;

impl PeerService {
    pub fn server(ledger: Ledger, secret: &[u8]) -> PeerServer {
        let server = pb::peer_server::PeerServer::new(PeerService { ledger })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        tonic::service::interceptor::InterceptedService::new(
            server,
            PeerSecretCheck {
                secret: hex::encode(secret),
            },
        )
    }
}

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    /// Reached only with the shared secret ([`PeerSecretCheck`]).
    async fn execute(
        &self,
        request: Request<pb::PeerBatch>,
    ) -> Result<Response<pb::PeerOutcome>, Status> {
        let (requests, mode): (Vec<LedgerRequest>, BatchMode) = decode(&request.into_inner().batch)
            .map_err(|e| Status::invalid_argument(format!("invalid batch: {e}")))?;
        // The ledger's own refusal travels as it is, so the first server answers exactly it.
        let outcome = self.ledger.execute_forwarded(requests, mode).await;
        let outcome = encode(&outcome).map_err(Status::internal)?;
        Ok(Response::new(pb::PeerOutcome { outcome }))
    }
}

/// The ledger's way to reach its peers: one channel per peer address, made on first use.
pub struct GrpcForwarder {
    secret: String,
    channels: Mutex<HashMap<String, Channel>>,
}

impl GrpcForwarder {
    pub fn new(secret: &[u8]) -> Arc<GrpcForwarder> {
        Arc::new(GrpcForwarder {
            secret: hex::encode(secret),
            channels: Mutex::default(),
        })
    }

    fn channel(&self, address: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(address.to_string())
            .map_err(|e| format!("peer address {address:?}: {e}"))?
            .connect_timeout(std::time::Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }
}

#[async_trait]
impl Forwarder for GrpcForwarder {
    async fn forward(
        &self,
        address: &str,
        requests: Vec<LedgerRequest>,
        mode: BatchMode,
    ) -> Result<Result<BatchOutcome, LedgerError>, String> {
        let channel = self.channel(address)?;
        let batch = encode(&(requests, mode))?;
        let mut request = Request::new(pb::PeerBatch { batch });
        request.metadata_mut().insert(
            SECRET_HEADER,
            self.secret
                .parse()
                .map_err(|_| "the peer secret is not valid metadata".to_string())?,
        );
        let reply = PeerClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
            .execute(request)
            .await;
        match reply {
            Ok(r) => decode(&r.into_inner().outcome),
            Err(status) => {
                if status.code() == tonic::Code::Unavailable {
                    // Stopped or unreachable: drop the channel, the next try reconnects.
                    self.channels
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(address);
                }
                Err(format!("{}: {}", status.code(), status.message()))
            }
        }
    }
}

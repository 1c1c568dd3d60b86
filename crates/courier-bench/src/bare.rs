//! The baseline: the same contract served by bare tonic, with no layers, no validation, no
//! tracing and in-memory queues, so that every figure of Courier can be given as a ratio to it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use courier_proto::courier::chat::v1::chat_service_server::{ChatService, ChatServiceServer};
use courier_proto::courier::chat::v1::{ChatRequest, ChatResponse};
use courier_proto::courier::hello::v1::say_hello_service_server::{
    SayHelloService, SayHelloServiceServer,
};
use courier_proto::courier::hello::v1::{HelloRequest, HelloResponse};
use courier_proto::courier::message::v1::message_service_server::{
    MessageService, MessageServiceServer,
};
use courier_proto::courier::message::v1::{
    Message, PostMessageRequest, PostMessageResponse, ReceiveMessageRequest,
    ReceiveMessageResponse, SendMessageRequest, SendMessageResponse,
};
use tokio::sync::{Notify, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// One user's messages and the signal that wakes its reader.
type Queue = (VecDeque<Message>, Arc<Notify>);

/// Per-user queues and a wake-up per user: the least a correct queue needs.
#[derive(Clone, Default)]
pub struct Bare {
    queues: Arc<Mutex<HashMap<String, Queue>>>,
    /// The last id assigned: the contract has the server assign `id` and `sent_at`.
    last_id: Arc<AtomicU64>,
    /// PostMessage's answers by (sender, idempotency key): a retry gets the first. Never
    /// pruned; a baseline lives for one benchmark run.
    posts: Arc<Mutex<HashMap<(String, String), Message>>>,
}

impl Bare {
    /// Queues `message` with a fresh id and sent_at; answers it as queued.
    fn push(&self, mut message: Message) -> Message {
        message.id = (self.last_id.fetch_add(1, Ordering::Relaxed) + 1).to_string();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        message.sent_at = Some(courier_wkt::Timestamp {
            seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(now.subsec_nanos()).unwrap_or(0),
        });
        let mut queues = self.queues.lock().expect("not poisoned");
        let (queue, notify) = queues.entry(message.to.clone()).or_default();
        queue.push_back(message.clone());
        notify.notify_waiters();
        message
    }

    async fn pop(&self, user: &str) -> Message {
        loop {
            let notify = {
                let mut queues = self.queues.lock().expect("not poisoned");
                let (queue, notify) = queues.entry(user.to_owned()).or_default();
                if let Some(message) = queue.pop_front() {
                    return message;
                }
                Arc::clone(notify)
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let popped = {
                let mut queues = self.queues.lock().expect("not poisoned");
                queues
                    .get_mut(user)
                    .and_then(|(queue, _)| queue.pop_front())
            };
            if let Some(message) = popped {
                return message;
            }
            notified.await;
        }
    }

    /// The three services, ready for `Server::add_service`.
    pub fn services(
        self,
    ) -> (
        SayHelloServiceServer<Bare>,
        MessageServiceServer<Bare>,
        ChatServiceServer<Bare>,
    ) {
        (
            SayHelloServiceServer::new(self.clone()),
            MessageServiceServer::new(self.clone()),
            ChatServiceServer::new(self),
        )
    }
}

#[tonic::async_trait]
impl SayHelloService for Bare {
    async fn hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        let msg = format!("hello world! {}", request.into_inner().name);
        Ok(Response::new(HelloResponse { msg }))
    }
}

#[tonic::async_trait]
impl MessageService for Bare {
    type ReceiveMessageStream = ReceiverStream<Result<ReceiveMessageResponse, Status>>;

    async fn receive_message(
        &self,
        request: Request<ReceiveMessageRequest>,
    ) -> Result<Response<Self::ReceiveMessageStream>, Status> {
        let request = request.into_inner();
        let user = request.user;
        // The contract: with an idle timeout, the stream ends with OK after that long without
        // a message.
        let idle = request
            .idle_timeout
            .and_then(|timeout| Duration::try_from(timeout).ok());
        let (sender, receiver) = mpsc::channel(1);
        let bare = self.clone();
        tokio::spawn(async move {
            loop {
                let next = async {
                    match idle {
                        Some(idle) => tokio::time::timeout(idle, bare.pop(&user)).await.ok(),
                        None => Some(bare.pop(&user).await),
                    }
                };
                let message = tokio::select! {
                    () = sender.closed() => return,
                    next = next => match next {
                        Some(message) => message,
                        None => return,
                    },
                };
                if sender
                    .send(Ok(ReceiveMessageResponse {
                        message: Some(message),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn send_message(
        &self,
        request: Request<Streaming<SendMessageRequest>>,
    ) -> Result<Response<SendMessageResponse>, Status> {
        let mut stream = request.into_inner();
        let mut count = 0;
        while let Some(request) = stream.message().await? {
            if let Some(message) = request.message {
                self.push(message);
                count += 1;
            }
        }
        Ok(Response::new(SendMessageResponse { count }))
    }

    async fn post_message(
        &self,
        request: Request<PostMessageRequest>,
    ) -> Result<Response<PostMessageResponse>, Status> {
        let request = request.into_inner();
        let Some(message) = request.message else {
            return Err(Status::invalid_argument("message: is required"));
        };
        // Once per sender and key: looked up and queued under one lock.
        let mut posts = self.posts.lock().expect("not poisoned");
        let key = (message.from.clone(), request.idempotency_key);
        let message = match posts.get(&key) {
            Some(first) => first.clone(),
            None => {
                let queued = self.push(message);
                posts.insert(key, queued.clone());
                queued
            }
        };
        Ok(Response::new(PostMessageResponse {
            message: Some(message),
        }))
    }
}

#[tonic::async_trait]
impl ChatService for Bare {
    type ChatStream = ReceiverStream<Result<ChatResponse, Status>>;

    async fn chat(
        &self,
        request: Request<Streaming<ChatRequest>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let user = request
            .metadata()
            .get("from")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut inbound = request.into_inner();
        let (sender, receiver) = mpsc::channel(1);
        let bare = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = sender.closed() => return,
                    incoming = inbound.next() => match incoming {
                        Some(Ok(ChatRequest { message: Some(message) })) => {
                            bare.push(message);
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                    message = bare.pop(&user) => {
                        if sender.send(Ok(ChatResponse { message: Some(message) })).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

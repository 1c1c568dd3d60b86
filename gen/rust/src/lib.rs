// @generated
pub mod courier {
    pub mod chat {
        #[cfg(feature = "courier-chat-v1")]
        // @@protoc_insertion_point(attribute:courier.chat.v1)
        pub mod v1 {
            include!("courier/chat/v1/courier.chat.v1.rs");
            // @@protoc_insertion_point(courier.chat.v1)
        }
    }
    pub mod hello {
        #[cfg(feature = "courier-hello-v1")]
        // @@protoc_insertion_point(attribute:courier.hello.v1)
        pub mod v1 {
            include!("courier/hello/v1/courier.hello.v1.rs");
            // @@protoc_insertion_point(courier.hello.v1)
        }
    }
    pub mod message {
        #[cfg(feature = "courier-message-v1")]
        // @@protoc_insertion_point(attribute:courier.message.v1)
        pub mod v1 {
            include!("courier/message/v1/courier.message.v1.rs");
            // @@protoc_insertion_point(courier.message.v1)
        }
    }
}
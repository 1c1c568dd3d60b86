//! The file descriptor sets that the generated crate exports for server reflection.

use prost::Message as _;
use prost_types::FileDescriptorSet;

/// Decodes `bytes` and lists, per file, its name and the fully qualified RPCs it declares.
fn describe(bytes: &[u8]) -> Vec<(String, Vec<String>)> {
    let set = FileDescriptorSet::decode(bytes).expect("descriptor set decodes");
    set.file
        .iter()
        .map(|file| {
            let rpcs = file
                .service
                .iter()
                .flat_map(|service| {
                    service.method.iter().map(move |method| {
                        format!("{}.{}/{}", file.package(), service.name(), method.name())
                    })
                })
                .collect();
            (file.name().to_owned(), rpcs)
        })
        .collect()
}

#[test]
fn each_package_describes_its_own_file_and_rpcs() {
    use courier_proto::courier::{chat, hello, message};
    assert_eq!(
        describe(hello::v1::FILE_DESCRIPTOR_SET),
        [(
            "courier/hello/v1/hello.proto".to_owned(),
            vec!["courier.hello.v1.SayHelloService/Hello".to_owned()]
        )]
    );
    assert_eq!(
        describe(message::v1::FILE_DESCRIPTOR_SET),
        [(
            "courier/message/v1/message.proto".to_owned(),
            vec![
                "courier.message.v1.MessageService/ReceiveMessage".to_owned(),
                "courier.message.v1.MessageService/SendMessage".to_owned(),
                "courier.message.v1.MessageService/PostMessage".to_owned(),
            ]
        )]
    );
    assert_eq!(
        describe(chat::v1::FILE_DESCRIPTOR_SET),
        [(
            "courier/chat/v1/chat.proto".to_owned(),
            vec!["courier.chat.v1.ChatService/Chat".to_owned()]
        )]
    );
}

#[test]
fn descriptors_keep_the_proto_comments() {
    let set =
        FileDescriptorSet::decode(courier_proto::courier::hello::v1::FILE_DESCRIPTOR_SET).unwrap();
    let info = set.file[0]
        .source_code_info
        .as_ref()
        .expect("source info kept");
    assert!(info.location.iter().any(|location| {
        location
            .leading_comments()
            .contains("SayHelloService answers a greeting.")
    }));
}

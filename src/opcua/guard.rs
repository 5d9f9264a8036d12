//! Decoding limits the stack lacks, put in front of its own decoders.
//!
//! async-opcua 0.19 decodes every structure of namespace 0 that arrives in
//! an ExtensionObject, and some of its decoders size memory from the wire
//! without a bound: an `Argument` (alone, or inside a
//! ProgramDiagnosticDataType and others) is padded with zeros up to its
//! ValueRank, an i32, so a value of 100 bytes makes it allocate and zero
//! 6.8 GB (both found by the `opcua_value` fuzz target). A server, or
//! anything between it and millrace on an unsigned channel, could end the
//! process with one notification.
//!
//! millrace reads no structure as a tag value (an ExtensionObject is
//! TYPE_MISMATCH for every tag type), and the session needs only the three
//! notification structures of a PublishResponse. So [`Guard`] lets the
//! stack decode exactly those and keeps every other structure of
//! namespace 0 as its opaque bytes, read as they arrive rather than as
//! many as the length claims: the tag that holds one gets a bad quality
//! and one log line, the rest of the message is delivered, and nothing is
//! allocated that the bytes did not pay for. Structures of other
//! namespaces already stay opaque (the stack has no decoder for them).

use std::io::Read;
use std::sync::Arc;

use opcua::types::type_loader::{
    ByteStringBody, TypeLoader, TypeLoaderCollection, TypeLoaderPriority,
};
use opcua::types::{
    Context, ContextOwned, DataTypeId, DynEncodable, EncodingResult, Error, NodeId, ObjectId,
};

/// Puts the guard first in a decoding context: the client sessions', the
/// GetEndpoints channel's and the fuzz target's. `TypeLoaderCollection::add`
/// places a loader after those of equal priority, and the stack's
/// generated loader is already there with the first priority (`Core`), so
/// the collection is rebuilt with the guard ahead of what it held.
pub(crate) fn guard(context: &mut ContextOwned) {
    let loaders = context.loaders_mut();
    let mut guarded = TypeLoaderCollection::new_empty();
    guarded.add(Arc::new(Guard));
    for loader in loaders.iter() {
        guarded.add(Arc::clone(loader));
    }
    *loaders = guarded;
}

/// The structures the stack still decodes: what a PublishResponse's
/// NotificationMessage carries (DataType id and binary encoding id).
const DECODED: [(DataTypeId, ObjectId); 3] = [
    (
        DataTypeId::DataChangeNotification,
        ObjectId::DataChangeNotification_Encoding_DefaultBinary,
    ),
    (
        DataTypeId::StatusChangeNotification,
        ObjectId::StatusChangeNotification_Encoding_DefaultBinary,
    ),
    (
        DataTypeId::EventNotificationList,
        ObjectId::EventNotificationList_Encoding_DefaultBinary,
    ),
];

struct Guard;

impl TypeLoader for Guard {
    fn load_from_binary(
        &self,
        node_id: &NodeId,
        stream: &mut dyn Read,
        _ctx: &Context<'_>,
        length: Option<usize>,
    ) -> Option<EncodingResult<Box<dyn DynEncodable>>> {
        if node_id.namespace != 0 {
            return None;
        }
        let id = node_id.as_u32()?;
        if DECODED
            .iter()
            .any(|&(data_type, encoding)| id == data_type as u32 || id == encoding as u32)
        {
            return None;
        }
        // An ExtensionObject's binary body always has its length; without
        // one the stack refuses the body anyway.
        let length = length?;
        let mut body = Vec::new();
        if let Err(e) = stream.take(length as u64).read_to_end(&mut body) {
            return Some(Err(e.into()));
        }
        if body.len() < length {
            return Some(Err(Error::decoding(format!(
                "a structure of {length} bytes ends after {}",
                body.len()
            ))));
        }
        Some(Ok(Box::new(ByteStringBody::new(
            body.into(),
            node_id.clone(),
        ))))
    }

    /// The stack's generated loader's priority; [`guard`] puts this one
    /// before it.
    fn priority(&self) -> TypeLoaderPriority {
        TypeLoaderPriority::Core
    }
}

#[cfg(test)]
mod tests {
    use opcua::types::{
        Argument, BinaryDecodable, BinaryEncodable, DataChangeNotification, DecodingOptions,
        ExtensionObject, LocalizedText, MonitoredItemNotification, NamespaceMap,
    };

    use super::*;

    fn context() -> ContextOwned {
        let mut context =
            ContextOwned::new_default(NamespaceMap::new(), DecodingOptions::default());
        guard(&mut context);
        context
    }

    /// An Argument in an ExtensionObject whose ValueRank is `rank`, with
    /// one array dimension.
    fn argument(rank: i32) -> Vec<u8> {
        let argument = Argument {
            name: "x".into(),
            data_type: DataTypeId::Double.into(),
            // The stack encodes only a rank that matches the dimensions.
            value_rank: 1,
            array_dimensions: Some(vec![2]),
            description: LocalizedText::null(),
        };
        let mut bytes = ExtensionObject::from_message(argument).encode_to_vec(&context().context());
        // name "x": 4+1 bytes, data type i=11: 2 bytes, after the
        // ExtensionObject's encoding id (4), encoding (1) and length (4).
        bytes[9 + 5 + 2..9 + 5 + 2 + 4].copy_from_slice(&rank.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> EncodingResult<ExtensionObject> {
        ExtensionObject::decode(&mut std::io::Cursor::new(bytes), &context().context())
    }

    #[test]
    fn the_guard_comes_before_the_stacks_own_loaders() {
        let mut context = context();
        let priorities: Vec<_> = context.loaders_mut().iter().map(|l| l.priority()).collect();
        assert_eq!(priorities.len(), 3, "guard, generated, fallback");
        assert_eq!(priorities[0], TypeLoaderPriority::Core);
        assert_eq!(priorities[2], TypeLoaderPriority::Fallback);
    }

    #[test]
    fn a_structure_millrace_does_not_read_stays_opaque_bytes_not_an_allocation() {
        let bytes = argument(0x6500_0000);
        let decoded = decode(&bytes).unwrap();
        assert!(decoded.inner_as::<Argument>().is_none());
        let body = decoded.inner_as::<ByteStringBody>().expect("opaque bytes");
        assert_eq!(body.raw_body().as_ref(), &bytes[9..]);
        // A body shorter than its length is an error, allocated by what came.
        let cut = &bytes[..bytes.len() - 1];
        assert!(decode(cut).is_err());
    }

    #[test]
    fn the_notifications_of_a_publish_response_are_still_decoded() {
        let change = DataChangeNotification {
            monitored_items: Some(vec![MonitoredItemNotification {
                client_handle: 7,
                value: 2.5f64.into(),
            }]),
            diagnostic_infos: None,
        };
        let bytes =
            ExtensionObject::from_message(change.clone()).encode_to_vec(&context().context());
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.inner_as::<DataChangeNotification>(), Some(&change));
    }
}

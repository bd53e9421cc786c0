//! Property tests (a bounded fuzz run: 2,000 cases each, in `cargo test`) of the request
//! decoder: whatever bytes arrive, it answers with a request or a reason, never a panic, and
//! every request survives encoding.
#![cfg(feature = "user")]

use proptest::prelude::*;
use sockstats_common::protocol::{
    decode_request, encode_request, Grouping, Request, RuleSelector, OPS,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2_000,
        ..ProptestConfig::default()
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn request() -> impl Strategy<Value = Request> {
    let selector = prop_oneof![
        any::<u32>().prop_map(RuleSelector::uid),
        "[a-z]{1,12}".prop_map(|name| RuleSelector::user(&name)),
        "(/[a-z.]{1,8}){0,4}".prop_map(|path| RuleSelector::cgroup(&path)),
    ];
    let grouping = prop_oneof![
        Just(Grouping::Label),
        Just(Grouping::Uid),
        Just(Grouping::Cgroup),
        Just(Grouping::Process),
    ];
    prop_oneof![
        ".{0,80}".prop_map(|label| Request::Label { label }),
        Just(Request::Unlabel),
        Just(Request::Get),
        Just(Request::GetInterfaces),
        (any::<bool>(), any::<bool>())
            .prop_map(|(interfaces, cost)| Request::GetDestinations { interfaces, cost }),
        (proptest::option::of(".{0,40}"), any::<u32>())
            .prop_map(|(label, top)| Request::GetPeers { label, top }),
        Just(Request::GetValidation),
        (grouping, any::<bool>())
            .prop_map(|(by, destinations)| Request::GetBy { by, destinations }),
        Just(Request::Labels),
        Just(Request::Status),
        Just(Request::DebugInfo),
        (selector.clone(), ".{0,40}", any::<bool>()).prop_map(|(selector, label, temporary)| {
            Request::AddRule {
                selector,
                label,
                temporary,
            }
        }),
        selector.prop_map(|selector| Request::RemoveRule { selector }),
        Just(Request::Rules),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_request(&bytes);
    }

    #[test]
    fn arbitrary_json_objects_with_a_known_op_decode_or_say_why(
        op in prop::sample::select(OPS.to_vec()),
        fields in prop::collection::btree_map("[a-z_]{1,10}", json_value(), 0..5),
    ) {
        let mut object: serde_json::Map<String, serde_json::Value> = fields.into_iter().collect();
        object.insert("op".to_owned(), serde_json::Value::from(op));
        let line = serde_json::Value::Object(object).to_string();
        match decode_request(line.as_bytes()) {
            Ok(request) => prop_assert_eq!(request.op(), op),
            Err(error) => prop_assert!(error.to_string().contains(op), "{}", error),
        }
    }

    #[test]
    fn every_request_round_trips_as_one_line(request in request()) {
        let line = encode_request(&request);
        prop_assert!(line.ends_with('\n'));
        prop_assert_eq!(line.matches('\n').count(), 1);
        prop_assert_eq!(decode_request(line.trim_end().as_bytes()), Ok(request));
    }
}

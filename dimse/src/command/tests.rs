//! Tests of the command-set codec: fixed byte sequences, tolerance, errors, and
//! property tests for round trips and for never panicking on hostile input.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

const VERIFICATION: &str = "1.2.840.10008.1.1";
const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";

/// Raw elements of group 0000, in the order given, without a group length.
fn raw(elements: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (element, value) in elements {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// Splits a well-formed encoding into (element, value) pairs.
fn elements(bytes: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        assert_eq!(&rest[..2], &[0, 0], "group must be 0000");
        let element = u16::from_le_bytes([rest[2], rest[3]]);
        let len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        out.push((element, &rest[8..8 + len]));
        rest = &rest[8 + len..];
    }
    out
}

fn value_of(bytes: &[u8], element: u16) -> Option<&[u8]> {
    elements(bytes)
        .into_iter()
        .find(|(e, _)| *e == element)
        .map(|(_, v)| v)
}

/// Checks the encoder's layout promises, then that decoding gives the message back.
fn round_trip(message: impl Into<Message>) -> Vec<u8> {
    let message = message.into();
    let bytes = message.encode();
    let parts = elements(&bytes);
    assert_eq!(parts[0].0, 0x0000, "group length comes first");
    let group_length = u32::from_le_bytes(parts[0].1.try_into().unwrap()) as usize;
    assert_eq!(group_length, bytes.len() - 12);
    assert!(
        parts.windows(2).all(|w| w[0].0 < w[1].0),
        "ascending tag order"
    );
    assert!(
        parts.iter().all(|(_, v)| v.len() % 2 == 0),
        "even value lengths"
    );
    assert_eq!(Message::decode(&bytes), Ok(message));
    bytes
}

/// What DCMTK's `echoscu` sends: Verification SOP class, message ID 1, no data set.
const DCMTK_ECHO_RQ: [u8; 68] = [
    0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x38, 0x00, 0x00, 0x00, // group length 56
    0x00, 0x00, 0x02, 0x00, 0x12, 0x00, 0x00, 0x00, // AffectedSOPClassUID, 18 bytes
    b'1', b'.', b'2', b'.', b'8', b'4', b'0', b'.', b'1', b'0', b'0', b'0', b'8', b'.', b'1', b'.',
    b'1', 0x00, // "1.2.840.10008.1.1" + NUL pad
    0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x30, 0x00, // CommandField C-ECHO-RQ
    0x00, 0x00, 0x10, 0x01, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, // MessageID 1
    0x00, 0x00, 0x00, 0x08, 0x02, 0x00, 0x00, 0x00, 0x01, 0x01, // CommandDataSetType none
];

#[test]
fn decodes_and_reproduces_dcmtk_echo_request() {
    let expected = CEchoRq {
        message_id: 1,
        affected_sop_class_uid: VERIFICATION.into(),
    };
    let message = Message::decode(&DCMTK_ECHO_RQ).unwrap();
    assert_eq!(message, Message::CEchoRq(expected.clone()));
    assert_eq!(message.name(), "C-ECHO-RQ");
    assert_eq!(message.message_id(), Some(1));
    assert!(!message.has_data_set());
    assert_eq!(Message::from(expected).encode(), DCMTK_ECHO_RQ);
}

#[test]
fn echo_response() {
    let rsp = CEchoRsp {
        message_id_being_responded_to: 1,
        affected_sop_class_uid: VERIFICATION.into(),
        status: Status::Success,
    };
    let bytes = round_trip(rsp.clone());
    assert_eq!(value_of(&bytes, 0x0100), Some(&[0x30, 0x80][..]));
    assert_eq!(value_of(&bytes, 0x0900), Some(&[0, 0][..]));
    let message = Message::from(rsp);
    assert_eq!(message.message_id_being_responded_to(), Some(1));
    assert_eq!(message.status(), Some(Status::Success));
    assert_eq!(message.message_id(), None);
}

#[test]
fn store_request_carries_move_originator_and_data_set() {
    let rq = CStoreRq {
        message_id: 7,
        affected_sop_class_uid: CT_IMAGE.into(),
        affected_sop_instance_uid: "1.2.3.4.5".into(),
        priority: Priority::High,
        move_originator_ae_title: Some("MOVESCU".into()),
        move_originator_message_id: Some(3),
    };
    let bytes = round_trip(rq.clone());
    assert_eq!(
        value_of(&bytes, 0x0800),
        Some(&[0, 0][..]),
        "data set present"
    );
    assert_eq!(
        value_of(&bytes, 0x0700),
        Some(&[1, 0][..]),
        "HIGH is 0x0001"
    );
    assert_eq!(value_of(&bytes, 0x1000), Some(&b"1.2.3.4.5\0"[..]));
    assert_eq!(
        value_of(&bytes, 0x1030),
        Some(&b"MOVESCU "[..]),
        "AE padded with space"
    );
    assert!(Message::from(rq.clone()).has_data_set());

    let plain = CStoreRq {
        move_originator_ae_title: None,
        move_originator_message_id: None,
        ..rq
    };
    let bytes = round_trip(plain);
    assert_eq!(value_of(&bytes, 0x1030), None);
    assert_eq!(value_of(&bytes, 0x1031), None);
}

#[test]
fn store_response_omits_empty_uids() {
    let rsp = CStoreRsp {
        message_id_being_responded_to: 7,
        affected_sop_class_uid: String::new(),
        affected_sop_instance_uid: String::new(),
        status: Status::OutOfResources,
        error_comment: Some("disk full".into()),
    };
    let bytes = round_trip(rsp.clone());
    assert_eq!(value_of(&bytes, 0x0002), None);
    assert_eq!(value_of(&bytes, 0x1000), None);
    assert_eq!(value_of(&bytes, 0x0902), Some(&b"disk full "[..]));
    round_trip(CStoreRsp {
        affected_sop_class_uid: CT_IMAGE.into(),
        affected_sop_instance_uid: "1.2.3".into(),
        status: Status::CoercionOfDataElements,
        error_comment: None,
        ..rsp
    });
}

#[test]
fn find_request_and_pending_response_with_identifier() {
    let rq = CFindRq {
        message_id: 9,
        affected_sop_class_uid: STUDY_ROOT_FIND.into(),
        priority: Priority::Low,
    };
    let bytes = round_trip(rq);
    assert_eq!(value_of(&bytes, 0x0700), Some(&[2, 0][..]), "LOW is 0x0002");
    let pending = CFindRsp {
        message_id_being_responded_to: 9,
        affected_sop_class_uid: STUDY_ROOT_FIND.into(),
        status: Status::Pending,
        has_identifier: true,
        error_comment: None,
    };
    assert!(Message::from(pending.clone()).has_data_set());
    round_trip(pending.clone());
    let done = CFindRsp {
        status: Status::Success,
        has_identifier: false,
        ..pending
    };
    let bytes = round_trip(done.clone());
    assert_eq!(value_of(&bytes, 0x0800), Some(&[1, 1][..]));
    assert!(!Message::from(done).has_data_set());
}

#[test]
fn get_and_move_with_sub_operations() {
    round_trip(CGetRq {
        message_id: 2,
        affected_sop_class_uid: "1.2.840.10008.5.1.4.1.2.2.3".into(),
        priority: Priority::Medium,
    });
    let rq = CMoveRq {
        message_id: 3,
        affected_sop_class_uid: "1.2.840.10008.5.1.4.1.2.2.2".into(),
        priority: Priority::Medium,
        move_destination: "STORESCP".into(),
    };
    let bytes = round_trip(rq);
    assert_eq!(value_of(&bytes, 0x0600), Some(&b"STORESCP"[..]));
    let sub_operations = SubOperations {
        remaining: Some(4),
        completed: Some(10),
        failed: Some(1),
        warning: None,
    };
    let get = CGetRsp {
        message_id_being_responded_to: 2,
        affected_sop_class_uid: String::new(),
        status: Status::SUB_OPERATIONS_COMPLETE_WITH_FAILURES,
        sub_operations,
        has_identifier: true,
        error_comment: Some("one failed".into()),
    };
    let bytes = round_trip(get.clone());
    assert_eq!(value_of(&bytes, 0x1020), Some(&[4, 0][..]));
    assert_eq!(value_of(&bytes, 0x1023), None);
    let mv = CMoveRsp {
        message_id_being_responded_to: get.message_id_being_responded_to,
        affected_sop_class_uid: get.affected_sop_class_uid,
        status: Status::Pending,
        sub_operations: SubOperations::default(),
        has_identifier: false,
        error_comment: None,
    };
    round_trip(mv);
}

#[test]
fn cancel_request() {
    let bytes = round_trip(CCancelRq {
        message_id_being_responded_to: 9,
    });
    assert_eq!(value_of(&bytes, 0x0100), Some(&[0xFF, 0x0F][..]));
    let message = Message::decode(&bytes).unwrap();
    assert_eq!(
        (
            message.message_id(),
            message.message_id_being_responded_to()
        ),
        (None, Some(9))
    );
}

#[test]
fn tolerates_unknown_tags_missing_group_length_any_order_and_odd_strings() {
    let bytes = raw(&[
        (0x0800, &[0x01, 0x01]),
        (0x4000, b"retired"), // unknown, odd length
        (0x0110, &[0x05, 0x00]),
        (0x0100, &[0x30, 0x00]),
        (0x0002, b"1.2.3 "), // space-padded UID
    ]);
    let expected = CEchoRq {
        message_id: 5,
        affected_sop_class_uid: "1.2.3".into(),
    };
    assert_eq!(Message::decode(&bytes), Ok(expected.into()));

    let bytes = raw(&[
        (0x0100, &0x0021u16.to_le_bytes()),
        (0x0110, &[1, 0]),
        (0x0800, &[0, 0]),
        (0x0002, b"1.2.840.10008.5.1.4.1.2.2.2"),
        (0x0600, b"  DEST \0"),
    ]);
    let Ok(Message::CMoveRq(rq)) = Message::decode(&bytes) else {
        panic!("not a C-MOVE-RQ")
    };
    assert_eq!(rq.move_destination, "DEST");
    assert_eq!(
        rq.priority,
        Priority::Medium,
        "absent priority reads as MEDIUM"
    );
}

#[test]
fn unknown_priority_decodes_as_medium() {
    assert_eq!(Priority::from_code(0x7777), Priority::Medium);
    for priority in [Priority::Low, Priority::Medium, Priority::High] {
        assert_eq!(Priority::from_code(priority.code()), priority);
    }
}

#[test]
fn rejects_malformed_command_sets() {
    let mut echo = DCMTK_ECHO_RQ.to_vec();
    assert!(matches!(
        Message::decode(&echo[..5]),
        Err(CommandError::Truncated {
            offset: 0,
            available: 5
        })
    ));
    assert!(matches!(
        Message::decode(&echo[..30]),
        Err(CommandError::ElementOverrun {
            element: 0x0002,
            ..
        })
    ));

    echo[47] = 0x40; // CommandField 0x4030
    assert_eq!(
        Message::decode(&echo),
        Err(CommandError::UnknownCommandField(0x4030))
    );

    let no_instance = raw(&[
        (0x0100, &[1, 0]),
        (0x0110, &[1, 0]),
        (0x0800, &[0, 0]),
        (0x0002, b"1.2\0"),
    ]);
    let err = Message::decode(&no_instance).unwrap_err();
    assert_eq!(
        err,
        CommandError::MissingElement {
            command: "C-STORE-RQ",
            name: "AffectedSOPInstanceUID",
            element: 0x1000
        }
    );
    assert_eq!(
        err.to_string(),
        "C-STORE-RQ command set lacks the required AffectedSOPInstanceUID (0000,1000)"
    );

    let wide_id = raw(&[
        (0x0100, &[0x30, 0]),
        (0x0110, &[1, 0, 0, 0]),
        (0x0800, &[1, 1]),
        (0x0002, b"1.2\0"),
    ]);
    assert!(matches!(
        Message::decode(&wide_id),
        Err(CommandError::WrongValueLength {
            name: "MessageID",
            expected: 2,
            actual: 4,
            ..
        })
    ));
    let short_length = raw(&[(0x0000, &[4, 0]), (0x0100, &[0x30, 0])]);
    assert!(matches!(
        Message::decode(&short_length),
        Err(CommandError::WrongValueLength { expected: 4, .. })
    ));

    let bad_uid = raw(&[
        (0x0100, &[0x30, 0]),
        (0x0110, &[1, 0]),
        (0x0800, &[1, 1]),
        (0x0002, "1.2.é".as_bytes()),
    ]);
    assert!(matches!(
        Message::decode(&bad_uid),
        Err(CommandError::NonAsciiUid {
            element: 0x0002,
            ..
        })
    ));

    let twice = raw(&[(0x0100, &[0x30, 0]), (0x0100, &[0x30, 0])]);
    assert_eq!(
        Message::decode(&twice),
        Err(CommandError::DuplicateElement { element: 0x0100 })
    );

    let mut data_element = raw(&[(0x0100, &[0x30, 0])]);
    data_element.extend_from_slice(&[0x08, 0x00, 0x18, 0x00, 0, 0, 0, 0]);
    assert_eq!(
        Message::decode(&data_element),
        Err(CommandError::UnexpectedGroup {
            group: 8,
            element: 0x18
        })
    );

    let huge = vec![0u8; MAX_COMMAND_SET_LEN + 1];
    assert!(matches!(
        Message::decode(&huge),
        Err(CommandError::TooLarge { .. })
    ));
    assert!(matches!(
        Message::decode(&[]),
        Err(CommandError::MissingElement {
            name: "CommandField",
            ..
        })
    ));
}

#[test]
fn rejects_data_set_type_contradicting_the_command() {
    let mut echo = DCMTK_ECHO_RQ.to_vec();
    echo[66] = 0x02; // CommandDataSetType 0x0102: "a data set follows"
    let err = Message::decode(&echo).unwrap_err();
    assert_eq!(
        err,
        CommandError::DataSetTypeMismatch {
            command: "C-ECHO-RQ",
            data_set_present: true
        }
    );
    assert!(err.to_string().contains("never carries one"));

    let store = raw(&[(0x0100, &[1, 0]), (0x0800, &[1, 1])]);
    assert_eq!(
        Message::decode(&store),
        Err(CommandError::DataSetTypeMismatch {
            command: "C-STORE-RQ",
            data_set_present: false
        })
    );
}

#[test]
fn element_numbers_match_the_standard_dictionary() {
    use dicom_dictionary_std::tags;
    for (tag, el) in [
        (tags::COMMAND_GROUP_LENGTH, COMMAND_GROUP_LENGTH),
        (tags::AFFECTED_SOP_CLASS_UID, AFFECTED_SOP_CLASS_UID),
        (tags::COMMAND_FIELD, COMMAND_FIELD),
        (tags::MESSAGE_ID, MESSAGE_ID),
        (
            tags::MESSAGE_ID_BEING_RESPONDED_TO,
            MESSAGE_ID_BEING_RESPONDED_TO,
        ),
        (tags::MOVE_DESTINATION, MOVE_DESTINATION),
        (tags::PRIORITY, PRIORITY),
        (tags::COMMAND_DATA_SET_TYPE, COMMAND_DATA_SET_TYPE),
        (tags::STATUS, STATUS),
        (tags::ERROR_COMMENT, ERROR_COMMENT),
        (tags::AFFECTED_SOP_INSTANCE_UID, AFFECTED_SOP_INSTANCE_UID),
        (
            tags::NUMBER_OF_REMAINING_SUBOPERATIONS,
            REMAINING_SUB_OPERATIONS,
        ),
        (
            tags::NUMBER_OF_COMPLETED_SUBOPERATIONS,
            COMPLETED_SUB_OPERATIONS,
        ),
        (tags::NUMBER_OF_FAILED_SUBOPERATIONS, FAILED_SUB_OPERATIONS),
        (
            tags::NUMBER_OF_WARNING_SUBOPERATIONS,
            WARNING_SUB_OPERATIONS,
        ),
        (
            tags::MOVE_ORIGINATOR_APPLICATION_ENTITY_TITLE,
            MOVE_ORIGINATOR_AE_TITLE,
        ),
        (tags::MOVE_ORIGINATOR_MESSAGE_ID, MOVE_ORIGINATOR_MESSAGE_ID),
    ] {
        assert_eq!((tag.0, tag.1), (0x0000, el.element), "{}", el.name);
    }
}

fn uid() -> impl Strategy<Value = String> {
    "[0-9.]{1,64}"
}

/// Responses may leave UIDs out, which reads back as empty.
fn response_uid() -> impl Strategy<Value = String> {
    "[0-9.]{0,64}"
}

fn ae() -> impl Strategy<Value = String> {
    "[A-Z0-9_]{1,16}"
}

fn comment() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("|[A-Za-z0-9]([A-Za-z0-9 .:]{0,62}[A-Za-z0-9])?")
}

fn status() -> impl Strategy<Value = Status> {
    any::<u16>().prop_map(Status::from_code)
}

fn priority() -> impl Strategy<Value = Priority> {
    prop_oneof![
        Just(Priority::Low),
        Just(Priority::Medium),
        Just(Priority::High)
    ]
}

fn sub_operations() -> impl Strategy<Value = SubOperations> {
    let count = || proptest::option::of(any::<u16>());
    (count(), count(), count(), count()).prop_map(|(remaining, completed, failed, warning)| {
        SubOperations {
            remaining,
            completed,
            failed,
            warning,
        }
    })
}

fn message() -> impl Strategy<Value = Message> {
    let id = any::<u16>;
    prop_oneof![
        (id(), uid()).prop_map(|(message_id, affected_sop_class_uid)| CEchoRq {
            message_id,
            affected_sop_class_uid
        }
        .into()),
        (id(), response_uid(), status()).prop_map(|(m, c, s)| CEchoRsp {
            message_id_being_responded_to: m,
            affected_sop_class_uid: c,
            status: s
        }
        .into()),
        (
            id(),
            uid(),
            uid(),
            priority(),
            proptest::option::of(ae()),
            proptest::option::of(id())
        )
            .prop_map(|(m, c, i, p, ae, ae_id)| CStoreRq {
                message_id: m,
                affected_sop_class_uid: c,
                affected_sop_instance_uid: i,
                priority: p,
                move_originator_ae_title: ae,
                move_originator_message_id: ae_id,
            }
            .into()),
        (id(), response_uid(), response_uid(), status(), comment()).prop_map(|(m, c, i, s, e)| {
            CStoreRsp {
                message_id_being_responded_to: m,
                affected_sop_class_uid: c,
                affected_sop_instance_uid: i,
                status: s,
                error_comment: e,
            }
            .into()
        }),
        (id(), uid(), priority()).prop_map(|(m, c, p)| CFindRq {
            message_id: m,
            affected_sop_class_uid: c,
            priority: p
        }
        .into()),
        (id(), response_uid(), status(), any::<bool>(), comment()).prop_map(|(m, c, s, h, e)| {
            CFindRsp {
                message_id_being_responded_to: m,
                affected_sop_class_uid: c,
                status: s,
                has_identifier: h,
                error_comment: e,
            }
            .into()
        }),
        (id(), uid(), priority()).prop_map(|(m, c, p)| CGetRq {
            message_id: m,
            affected_sop_class_uid: c,
            priority: p
        }
        .into()),
        (
            id(),
            response_uid(),
            status(),
            sub_operations(),
            any::<bool>(),
            comment()
        )
            .prop_map(|(m, c, s, o, h, e)| {
                CGetRsp {
                    message_id_being_responded_to: m,
                    affected_sop_class_uid: c,
                    status: s,
                    sub_operations: o,
                    has_identifier: h,
                    error_comment: e,
                }
                .into()
            }),
        (id(), uid(), priority(), ae()).prop_map(|(m, c, p, d)| CMoveRq {
            message_id: m,
            affected_sop_class_uid: c,
            priority: p,
            move_destination: d,
        }
        .into()),
        (
            id(),
            response_uid(),
            status(),
            sub_operations(),
            any::<bool>(),
            comment()
        )
            .prop_map(|(m, c, s, o, h, e)| {
                CMoveRsp {
                    message_id_being_responded_to: m,
                    affected_sop_class_uid: c,
                    status: s,
                    sub_operations: o,
                    has_identifier: h,
                    error_comment: e,
                }
                .into()
            }),
        id().prop_map(|m| CCancelRq {
            message_id_being_responded_to: m
        }
        .into()),
    ]
}

/// Elements that reach deep into the decoder: known element numbers, valid command
/// fields, and values of plausible and implausible sizes.
fn hostile_elements() -> impl Strategy<Value = Vec<(u16, Vec<u8>)>> {
    let known = [
        0x0000, 0x0002, 0x0100, 0x0110, 0x0120, 0x0600, 0x0700, 0x0800, 0x0900, 0x0902, 0x1000,
        0x1020, 0x1021, 0x1022, 0x1023, 0x1030, 0x1031,
    ];
    let fields = [
        0x0001, 0x8001, 0x0010, 0x8010, 0x0020, 0x8020, 0x0021, 0x8021, 0x0030, 0x8030, 0x0FFF,
    ];
    let element = prop_oneof![4 => proptest::sample::select(known.to_vec()), 1 => any::<u16>()];
    let value = prop_oneof![
        proptest::sample::select(fields.to_vec()).prop_map(|f: u16| f.to_le_bytes().to_vec()),
        Just(vec![0x01, 0x01]),
        proptest::collection::vec(any::<u8>(), 0..70),
    ];
    proptest::collection::vec((element, value), 0..24)
}

proptest! {
    #[test]
    fn decode_inverts_encode(message in message()) {
        round_trip(message);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_damaged_encodings(
        message in message(),
        cut in any::<Index>(),
        flips in proptest::collection::vec((any::<Index>(), any::<u8>()), 0..6),
    ) {
        let mut bytes = message.encode();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = Message::decode(&bytes);
        bytes.truncate(cut.index(bytes.len() + 1));
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_hostile_elements(parts in hostile_elements()) {
        let parts: Vec<(u16, &[u8])> = parts.iter().map(|(e, v)| (*e, v.as_slice())).collect();
        if let Ok(message) = Message::decode(&raw(&parts)) {
            // Whatever decodes must encode to something that decodes the same way.
            prop_assert_eq!(Message::decode(&message.encode()), Ok(message));
        }
    }
}

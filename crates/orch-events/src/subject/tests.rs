//! Subject and pattern validation and matching.

use super::*;

#[test]
fn errors_say_what_and_where() {
    assert_eq!(Subject::new(""), Err(SubjectError::Empty));
    assert_eq!(
        Subject::new("a..b"),
        Err(SubjectError::EmptyToken {
            input: "a..b".into(),
            token: 1,
            byte: 2
        })
    );
    assert_eq!(
        Pattern::new("a.b."),
        Err(SubjectError::EmptyToken {
            input: "a.b.".into(),
            token: 2,
            byte: 4
        })
    );
    assert_eq!(
        Subject::new(".a"),
        Err(SubjectError::EmptyToken {
            input: ".a".into(),
            token: 0,
            byte: 0
        })
    );
    assert_eq!(
        Subject::new("a.b c"),
        Err(SubjectError::Whitespace {
            input: "a.b c".into(),
            token: 1,
            byte: 3
        })
    );
    assert_eq!(
        Subject::new("a.*.c"),
        Err(SubjectError::WildcardInSubject {
            input: "a.*.c".into(),
            token: 1,
            byte: 2,
            wildcard: '*'
        })
    );
    assert_eq!(
        Subject::new("a.>"),
        Err(SubjectError::WildcardInSubject {
            input: "a.>".into(),
            token: 1,
            byte: 2,
            wildcard: '>'
        })
    );
    assert_eq!(
        Pattern::new("a.>.c"),
        Err(SubjectError::FullWildcardNotLast {
            input: "a.>.c".into(),
            token: 1,
            byte: 2
        })
    );
    let message = Pattern::new("a.>.c").map_err(|e| e.to_string());
    assert_eq!(
        message,
        Err("\"a.>.c\": `>` at token 1 (byte 2) must be the last token".to_owned())
    );
}

#[test]
fn the_quick_check_agrees_with_the_explanation() {
    let cases = [
        "a", "a.b", "a..b", ".a", "a.", "*", ">", "a.*", "a.>", "a.>.b", "a*.b>", "a b", "a\tb",
        "é.b", "a.\u{a0}", "\u{7f}", "~!.$", "",
    ];
    for input in cases {
        for wildcards in [false, true] {
            if is_plainly_valid(input.as_bytes(), wildcards) {
                assert_eq!(explain(input, wildcards), Ok(()), "{input:?}");
            }
        }
    }
    assert!(Subject::new("é.b").is_ok());
    assert!(Subject::new("a.\u{a0}").is_err());
}

proptest::proptest! {
    #[test]
    fn validation_is_the_explanation(
        input in "[ab.*> é\t~!\u{7f}]{0,40}",
        wildcards: bool,
    ) {
        proptest::prop_assert_eq!(validate(&input, wildcards), explain(&input, wildcards));
    }

    #[test]
    fn mostly_valid_subjects_are_checked_alike(input in "[ab.*>]{1,40}", wildcards: bool) {
        proptest::prop_assert_eq!(validate(&input, wildcards), explain(&input, wildcards));
    }
}

#[test]
fn short_and_long_subjects_behave_alike() {
    let short = "a".repeat(Subject::INLINE);
    let long = format!("{short}.b");
    for text in [short.as_str(), long.as_str()] {
        let subject = Subject::new(text).expect("valid");
        assert_eq!(subject.as_str(), text);
        assert_eq!(subject.clone(), subject);
        assert_eq!(subject.to_string(), text);
        assert!(Pattern::new(">").expect("valid").matches(&subject));
    }
    let (a, b) = (
        Subject::new(&short).expect("valid"),
        Subject::new(&long).expect("valid"),
    );
    assert!(a < b, "ordered by text");
}

#[test]
fn wildcards_are_whole_tokens_only() {
    assert!(Subject::new("a*.b>").is_ok());
    assert!(Pattern::new("a.>").is_ok());
    assert!(Pattern::new(">").is_ok());
    assert!(Pattern::new("*.*").is_ok());
    let p = Pattern::new("a*").expect("valid");
    assert!(!p.matches(&Subject::new("ab").expect("valid")));
}

#[test]
fn serde_round_trip_validates() {
    let s: Subject = serde_json::from_str("\"a.b\"").expect("valid");
    assert_eq!(s.as_str(), "a.b");
    assert!(serde_json::from_str::<Subject>("\"a..b\"").is_err());
    assert_eq!(serde_json::to_string(&s).ok().as_deref(), Some("\"a.b\""));
}

#[test]
fn the_token_limit_is_checked_alike_by_the_quick_check_and_the_explanation() {
    // Tokens of one byte make the shortest inputs with that many tokens.
    for token in ["ab", "a"] {
        for count in [MAX_TOKENS - 1, MAX_TOKENS, MAX_TOKENS + 1, 4 * MAX_TOKENS] {
            for (last, wildcards) in [("a", false), ("a", true), ("*", true), (">", true)] {
                let input = format!("{}{last}", format!("{token}.").repeat(count - 1));
                let result = validate(&input, wildcards);
                assert_eq!(result, explain(&input, wildcards), "{count} {last}");
                if count <= MAX_TOKENS {
                    assert_eq!(result, Ok(()), "{count} tokens are allowed");
                } else {
                    assert_eq!(
                        result,
                        Err(SubjectError::TooManyTokens {
                            tokens: count,
                            limit: MAX_TOKENS,
                            byte: (token.len() + 1) * MAX_TOKENS,
                        })
                    );
                }
            }
        }
    }
    // An earlier fault is reported first; one past the limit is not looked for.
    let input = format!("a..{}", "b.".repeat(2 * MAX_TOKENS));
    assert!(matches!(
        Subject::new(&input),
        Err(SubjectError::EmptyToken { token: 1, .. })
    ));
}

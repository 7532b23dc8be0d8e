//! Property tests: the verifier never panics, and no change to a valid token is accepted.

mod common;

use std::sync::LazyLock;

use common::{AUDIENCE, Fixture, NOW};
use proptest::prelude::*;

/// One fixture and token for all cases, because key generation would dominate the run time.
static FIXTURE: LazyLock<(Fixture, String)> = LazyLock::new(|| {
    let fixture = Fixture::new();
    let token = fixture.mint().token;
    (fixture, token)
});

/// Characters that keep a mutated token plausible: the base64url alphabet, the separator, padding
/// and a few characters that parsers often mishandle.
const TOKEN_CHARS: &[char] = &[
    'A', 'B', 'Z', 'a', 'b', 'z', '0', '1', '9', '-', '_', '.', '=', '+', '/', ' ', '\n', '\0',
    'é', '\u{FEFF}',
];

fn token_char() -> impl Strategy<Value = char> {
    prop::sample::select(TOKEN_CHARS)
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, char),
    Insert(usize, char),
    Remove(usize),
    Truncate(usize),
    FlipBit(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), token_char()).prop_map(|(index, c)| Mutation::Replace(index, c)),
        (any::<usize>(), token_char()).prop_map(|(index, c)| Mutation::Insert(index, c)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0u8..7).prop_map(|(index, bit)| Mutation::FlipBit(index, bit)),
    ]
}

/// Applies a mutation to an ASCII token. Indexes wrap around the token length.
fn apply(token: &str, mutation: &Mutation) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let len = chars.len();
    match *mutation {
        Mutation::Replace(index, c) => chars[index % len] = c,
        Mutation::Insert(index, c) => chars.insert(index % (len + 1), c),
        Mutation::Remove(index) => {
            chars.remove(index % len);
        }
        Mutation::Truncate(index) => chars.truncate(index % len),
        Mutation::FlipBit(index, bit) => {
            if let Ok(byte) = u8::try_from(chars[index % len]) {
                chars[index % len] = char::from(byte ^ (1 << bit));
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn verify_never_panics_on_arbitrary_text(input in ".{0,400}") {
        let (fixture, _) = &*FIXTURE;
        let _ = fixture.verifier.verify(&input, &[AUDIENCE], NOW);
    }

    #[test]
    fn verify_never_panics_on_token_like_text(input in "[A-Za-z0-9_=.-]{0,600}") {
        let (fixture, _) = &*FIXTURE;
        prop_assert!(fixture.verifier.verify(&input, &[AUDIENCE], NOW).is_err());
    }

    #[test]
    fn mutated_token_rejected(mutations in prop::collection::vec(mutation(), 1..4)) {
        let (fixture, token) = &*FIXTURE;
        let mut mutated = token.clone();
        for mutation in &mutations {
            mutated = apply(&mutated, mutation);
            if mutated.is_empty() {
                break;
            }
        }

        let result = fixture.verifier.verify(&mutated, &[AUDIENCE], NOW);

        if mutated == *token {
            prop_assert!(result.is_ok());
        } else {
            prop_assert!(result.is_err(), "accepted a mutated token: {:?}", mutations);
        }
    }
}

#[test]
fn unmutated_token_accepted() {
    let (fixture, token) = &*FIXTURE;

    assert!(fixture.verifier.verify(token, &[AUDIENCE], NOW).is_ok());
}

//! Sigil's authorization engine on Cedar.

#![forbid(unsafe_code)]

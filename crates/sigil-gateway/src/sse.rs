//! An incremental parser for server-sent events (the WHATWG HTML "event stream" format).
//!
//! The authority's revocation stream arrives in arbitrary chunks. [`SseParser::push`] takes each
//! chunk and returns the messages it completed: fields `id`, `event` and `data` up to a blank
//! line, with comment lines (`:` first) ignored and multiple `data` lines joined by `\n`.

/// The maximum bytes of one unfinished message; a longer one means the stream is not what the
/// authority sends, and the parser reports an error instead of buffering without bound.
pub const MAX_MESSAGE_LEN: usize = 1024 * 1024;

/// One dispatched message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseMessage {
    /// The `id` field, if the message had one.
    pub id: Option<String>,
    /// The `event` field; `message` when absent, as the format defines.
    pub event: String,
    /// The `data` lines joined with `\n`.
    pub data: String,
}

/// Why a stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// A message grew beyond [`MAX_MESSAGE_LEN`] without a blank line.
    MessageTooLong,
    /// A line was not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MessageTooLong => write!(
                f,
                "an event-stream message exceeded {MAX_MESSAGE_LEN} bytes"
            ),
            Self::NotUtf8 => f.write_str("an event-stream line is not UTF-8"),
        }
    }
}

/// Parser state kept between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of a line not yet terminated.
    line: Vec<u8>,
    /// True when the previous chunk ended with `\r`, so a leading `\n` belongs to that line end.
    after_cr: bool,
    /// The fields of the message being read.
    pending: Option<SseMessage>,
    /// Bytes held in `pending` and `line`, for the size bound.
    held: usize,
}

impl SseParser {
    /// Creates a parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk and returns the messages it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseMessage>, SseError> {
        let mut messages = Vec::new();
        for &byte in chunk {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(message) = self.end_line(&line)? {
                        messages.push(message);
                    }
                }
                _ => {
                    self.line.push(byte);
                    self.held += 1;
                    if self.held > MAX_MESSAGE_LEN {
                        return Err(SseError::MessageTooLong);
                    }
                }
            }
        }
        Ok(messages)
    }

    fn end_line(&mut self, line: &[u8]) -> Result<Option<SseMessage>, SseError> {
        if line.is_empty() {
            self.held = 0;
            return Ok(self.pending.take());
        }
        if line.first() == Some(&b':') {
            return Ok(None);
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        let message = self.pending.get_or_insert_with(|| SseMessage {
            event: "message".into(),
            ..SseMessage::default()
        });
        match field {
            "id" => message.id = Some(value.to_owned()),
            "event" => message.event = value.to_owned(),
            "data" => {
                if !message.data.is_empty() {
                    message.data.push('\n');
                }
                message.data.push_str(value);
            }
            // `retry` and unknown fields are ignored, as the format requires.
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_complete_message() {
        let mut parser = SseParser::new();
        let messages = parser
            .push(b"id: 7\nevent: revoke\ndata: {\"a\":1}\n\n")
            .unwrap();
        assert_eq!(
            messages,
            vec![SseMessage {
                id: Some("7".into()),
                event: "revoke".into(),
                data: "{\"a\":1}".into(),
            }]
        );
    }

    #[test]
    fn message_split_across_chunks() {
        let text = b"id: 1\r\nevent: heartbeat\r\ndata: x\r\n\r\nid: 2\revent: policy\rdata: y\r\r";
        for split in 0..text.len() {
            let mut parser = SseParser::new();
            let (head, tail) = text.split_at(split);
            let mut messages = parser.push(head).unwrap();
            messages.extend(parser.push(tail).unwrap());
            assert_eq!(messages.len(), 2, "split at {split}");
            assert_eq!(messages[0].event, "heartbeat", "split at {split}");
            assert_eq!(messages[1].id.as_deref(), Some("2"), "split at {split}");
            assert_eq!(messages[1].data, "y", "split at {split}");
        }
    }

    #[test]
    fn comments_and_unknown_fields_ignored() {
        let mut parser = SseParser::new();
        let messages = parser
            .push(b": keep-alive\nretry: 100\nfoo: bar\ndata: a\ndata: b\n\n")
            .unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].data, "a\nb");
        assert_eq!(messages[0].event, "message");
    }

    #[test]
    fn comment_alone_dispatches_nothing() {
        let mut parser = SseParser::new();
        assert!(parser.push(b": ping\n\n").unwrap().is_empty());
    }

    #[test]
    fn oversized_message_rejected() {
        let mut parser = SseParser::new();
        let long = vec![b'a'; MAX_MESSAGE_LEN + 1];
        assert_eq!(parser.push(&long), Err(SseError::MessageTooLong));
    }

    #[test]
    fn invalid_utf8_rejected() {
        let mut parser = SseParser::new();
        assert_eq!(parser.push(b"data: \xff\n"), Err(SseError::NotUtf8));
    }
}

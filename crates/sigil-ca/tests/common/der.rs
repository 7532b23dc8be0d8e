//! A minimal DER writer for crafting CSRs that no tool would produce.

/// Encodes one TLV with a definite length.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();

    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }

    out.extend_from_slice(content);
    out
}

pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// Encodes an OBJECT IDENTIFIER from its dotted arcs.
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = encode_arc(arcs[0] * 40 + arcs[1]);
    for &arc in &arcs[2..] {
        content.extend(encode_arc(arc));
    }
    tlv(0x06, &content)
}

fn encode_arc(mut arc: u64) -> Vec<u8> {
    let mut bytes = vec![(arc & 0x7f) as u8];
    arc >>= 7;
    while arc > 0 {
        bytes.push(0x80 | (arc & 0x7f) as u8);
        arc >>= 7;
    }
    bytes.reverse();
    bytes
}

pub fn null() -> Vec<u8> {
    vec![0x05, 0x00]
}

/// Encodes a BIT STRING with no unused bits.
pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = vec![0];
    content.extend_from_slice(bytes);
    tlv(0x03, &content)
}

/// Returns the content and the rest after the TLV that starts `input`.
pub fn split_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let first = input[1];
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let count = (first & 0x7f) as usize;
        let len = input[2..2 + count]
            .iter()
            .fold(0usize, |len, &byte| (len << 8) | byte as usize);
        (len, 2 + count)
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// The three parts of a DER CSR (or certificate): the signed data, the signature algorithm
/// and the signature BIT STRING, each as a whole TLV.
pub struct SignedParts {
    pub signed_data: Vec<u8>,
    pub algorithm: Vec<u8>,
    pub signature: Vec<u8>,
}

pub fn split_signed(der: &[u8]) -> SignedParts {
    let (_, content, _) = split_tlv(der);
    let (first_tlv, rest) = take_tlv(content);
    let (second_tlv, rest) = take_tlv(rest);
    let (third_tlv, _) = take_tlv(rest);

    SignedParts {
        signed_data: first_tlv.to_vec(),
        algorithm: second_tlv.to_vec(),
        signature: third_tlv.to_vec(),
    }
}

fn take_tlv(input: &[u8]) -> (&[u8], &[u8]) {
    let (_, _, rest) = split_tlv(input);
    let len = input.len() - rest.len();
    (&input[..len], rest)
}

pub fn join_signed(parts: &SignedParts) -> Vec<u8> {
    sequence(&[&parts.signed_data, &parts.algorithm, &parts.signature])
}

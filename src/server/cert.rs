//! The self-signed certificate's DER, written by hand: one fixed shape
//! (X.509 v3, ECDSA P-256 with SHA-256, CN = the host name, a
//! subjectAltName extension and nothing else), which is what rcgen made for
//! the agent. rcgen, yasna, pem and time cost the binary 40 KB for it
//! (#10's size target; benches/README.md, "Binary size"). Pure: the key and
//! the signature come from the caller (`tls.rs`, with ring).

use std::net::IpAddr;

/// One subjectAltName entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
}

/// True for a name a dNSName (an IA5String) can hold and a client can
/// match: printable ASCII, no spaces, not empty.
pub fn valid_dns(name: &str) -> bool {
    !name.is_empty() && name.len() < 254 && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Appends a DER element: tag, length, contents.
fn tlv(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(bytes.get(skip..).unwrap_or_default());
    }
    out.extend_from_slice(body);
}

fn wrap(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 4);
    tlv(&mut v, tag, body);
    v
}

const SEQ: u8 = 0x30;
/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2), no parameters.
const ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// id-ecPublicKey (1.2.840.10045.2.1) on prime256v1 (1.2.840.10045.3.1.7).
const EC_P256: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
/// commonName (2.5.4.3).
const CN: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
/// subjectAltName (2.5.29.17).
const SAN_OID: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x11];

/// A day as RFC 5280 wants it at midnight UTC: UTCTime through 2049,
/// GeneralizedTime after.
fn time(days_since_epoch: i64) -> Vec<u8> {
    let (y, m, d) = crate::collect::journal::civil_from_days(days_since_epoch);
    if (1950..2050).contains(&y) {
        wrap(
            0x17,
            format!("{:02}{m:02}{d:02}000000Z", y % 100).as_bytes(),
        )
    } else {
        wrap(0x18, format!("{y:04}{m:02}{d:02}000000Z").as_bytes())
    }
}

/// The to-be-signed part. `serial`: positive, minimal (first byte 0x01..0x7f);
/// `public_key`: the uncompressed P-256 point (65 bytes).
pub fn tbs(
    serial: &[u8],
    common_name: &str,
    sans: &[San],
    not_before_day: i64,
    not_after_day: i64,
    public_key: &[u8],
) -> Vec<u8> {
    let name = wrap(
        SEQ,
        &wrap(
            0x31,
            &wrap(SEQ, &[CN, &wrap(0x0c, common_name.as_bytes())].concat()),
        ),
    );
    let mut alt = Vec::new();
    for s in sans {
        match s {
            San::Dns(n) => tlv(&mut alt, 0x82, n.as_bytes()),
            San::Ip(IpAddr::V4(a)) => tlv(&mut alt, 0x87, &a.octets()),
            San::Ip(IpAddr::V6(a)) => tlv(&mut alt, 0x87, &a.octets()),
        }
    }
    let ext = wrap(SEQ, &[SAN_OID, &wrap(0x04, &wrap(SEQ, &alt))].concat());
    let mut key_bits = vec![0u8];
    key_bits.extend_from_slice(public_key);
    let body = [
        &[0xa0, 0x03, 0x02, 0x01, 0x02][..], // [0] version: v3
        &wrap(0x02, serial),
        ECDSA_SHA256,
        &name,
        &wrap(SEQ, &[time(not_before_day), time(not_after_day)].concat()),
        &name,
        &wrap(SEQ, &[EC_P256, &wrap(0x03, &key_bits)].concat()),
        &wrap(0xa3, &wrap(SEQ, &ext)),
    ]
    .concat();
    wrap(SEQ, &body)
}

/// The certificate: `tbs` with its ECDSA signature (ASN.1 DER form).
pub fn certificate(tbs: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut sig_bits = vec![0u8];
    sig_bits.extend_from_slice(signature);
    wrap(SEQ, &[tbs, ECDSA_SHA256, &wrap(0x03, &sig_bits)].concat())
}

/// PEM armour, 64 base64 characters a line.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_minimal_der() {
        for (n, head) in [
            (0usize, vec![0x04, 0x00]),
            (127, vec![0x04, 0x7f]),
            (128, vec![0x04, 0x81, 0x80]),
            (255, vec![0x04, 0x81, 0xff]),
            (256, vec![0x04, 0x82, 0x01, 0x00]),
            (70_000, vec![0x04, 0x83, 0x01, 0x11, 0x70]),
        ] {
            let v = wrap(0x04, &vec![0u8; n]);
            assert_eq!(&v[..head.len()], &head[..], "{n}");
            assert_eq!(v.len(), head.len() + n);
        }
    }

    #[test]
    fn times_switch_to_generalized_in_2050() {
        // 2049-12-31 and 2050-01-01
        assert_eq!(time(29_219), wrap(0x17, b"491231000000Z"));
        assert_eq!(time(29_220), wrap(0x18, b"20500101000000Z"));
        assert_eq!(time(0), wrap(0x17, b"700101000000Z"));
    }

    #[test]
    fn tbs_and_certificate_nest() {
        // Signed and parsed for real in tls.rs's tests and tests/tls.rs (the
        // connector's webpki); here the pieces fit and notAfter is found.
        let key = [4u8; 65];
        let t = tbs(
            &[0x11; 20],
            "vm",
            &[
                San::Dns("vm".into()),
                San::Ip(IpAddr::from([127, 0, 0, 1])),
                San::Ip(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ],
            20_000,
            20_397,
            &key,
        );
        let c = certificate(&t, &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]);
        // The walk tls.rs uses to read notAfter finds it.
        assert_eq!(super::super::tls::not_after(&c), Some(20_397 * 86_400));
        let p = pem("CERTIFICATE", &c);
        assert!(p.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(p.lines().all(|l| l.len() <= 64));
    }
}

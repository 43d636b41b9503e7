//! What a DNS name is made of: its registered domain, by the public suffix
//! list's ICANN section, and how generated a label reads, by the surprise
//! of its character pairs against pair statistics of real names, for DGA
//! rules that vowel ratios misjudge ("jwplatform" has few vowels and is
//! real; "xkqzvbrtplmnw" is not). The Python and JavaScript SDKs carry the
//! same tables and the same integer sums, so an agent in any of the three
//! languages reaches the same verdict on the same name.

pub use crate::public_suffixes::ICANN_SUFFIXES;

/// Symbols of the pair table: `^` (a label's start and end), a-z, `0` (any
/// digit), `-`, and `_` (any other byte).
const SYMBOLS: usize = 30;

/// Cost of each (symbol, next symbol) pair in sixteenths of a bit, two hex
/// digits each, row-major. Written by models/train/name_bigrams.sh from the
/// labels of the most linked sites and of the public suffix list and from
/// English words; the Python and JavaScript SDKs hold the same string.
pub const PAIR_COSTS: &str = "df424538484d4e4e4d474757553f444d3f824b374650615d9b737f9cffff368c4f485167724c784d9955354333834f9d363e305f685b816567d482ff4c2b53757e3091737e2f72ad2d7c81338aff3452743d7a97a56892ffb1ff3d2f8c5d9039a9bb2e3dff4447a07525a49d4669434aac8caf5f92cb9cff1e3e7d825c278269802d8b965978593c88d94c47844a7d7fff5f8e7e88ff314c6850395a6c667f689d884853386a5d902a2744546b6f667995c892ff503891949c343ea68c2a71aa3780922fa5f5365c4e2fbab3f55cf5f593f51e338aad83329c575337a4c44674573998d23e42874baa92d260b1d29bff422f848b8c288d95a621ac79626e682989d4515e554fb57fcf43aeff89ff4a485d3a4d405f568e88a766464f25405d925332387a59878a7e52ddaeff5345ec8d9b42b4b4c64c9fcc8f9c9f4108eca388d248ecc6a5adecececec332479918a2d81816a299f4f597060457bfb5e41783d8977fb4d9365b5fb36317b74622978819228bf703874773375d69950594f7595c23dabde8cff2a26508d8c2d8f92a72dbc9c8155743846cf964b903b8f93a65a9bd77eff39397d48422f642d7e3c8a69767860367e957c3b3568778aa97482ba89ff36665e4f566d7147815e995341392d504aa23343463f535b756f83d093ff25378c8d9531919e383cbb923c8a7e374cff374e5452af90ff68d2a083ff4d518d6fc5ababc58a79c5c576c576838d8dc581c503c5a5c5c58dc58dc5352e665b562b7752772fa66868595e3267ac5b3c4e536c84cc589ec18eff164a8c52923492994446ad6d6a5b6d55558a9e41334f9c7bc96da78d7aff3035876c8f2a8393422696b5657d7d378cec3c4253539275b3588cc17aff424f50504c56715b935288563b35306051c235293fa5829f87867ec988ff332eab7c8714748d8f25ab9987ba734078d87781815d85f1ba83d8ab87f13d1d718b6c2c78994731a9775c764f3572ef593c73819e8bef759bb770ef283b7e44ae2f6da060289cba729275423aaa926a3750b38e78439c8d78d314356a525c527f6a87569c884a514c4048ac5a43506e997894d780fd7bfd33299885a91dad907a30a98b636f7c2f8ebfe4998c3f9b7fe45c4ce4ade40c90c7c7c781c7786878c7817178c7c778c7815a8178c765c790c72239c7d42b4a434c4a5750604b7e6f5f544d5052d45d364d5c553cd49dd42dd4d44f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f";

/// Units of [`PAIR_COSTS`] in one bit.
const UNITS_PER_BIT: u32 = 16;

fn symbol(byte: u8) -> usize {
    match byte {
        b'a'..=b'z' => usize::from(byte - b'a') + 1,
        b'A'..=b'Z' => usize::from(byte - b'A') + 1,
        b'0'..=b'9' => 27,
        b'-' => 28,
        _ => 29,
    }
}

/// [`PAIR_COSTS`] as numbers, decoded when the SDK is compiled rather than
/// on every pair of every name.
const COSTS: [u8; SYMBOLS * SYMBOLS] = decode(PAIR_COSTS);

const fn decode(hex: &str) -> [u8; SYMBOLS * SYMBOLS] {
    let hex = hex.as_bytes();
    let mut costs = [0u8; SYMBOLS * SYMBOLS];
    let mut i = 0;
    while i < costs.len() && 2 * i + 1 < hex.len() {
        costs[i] = hex_digit(hex[2 * i]) * 16 + hex_digit(hex[2 * i + 1]);
        i += 1;
    }
    costs
}

const fn hex_digit(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        _ => 0,
    }
}

fn pair_cost(from: usize, to: usize) -> u64 {
    COSTS.get(from * SYMBOLS + to).map_or(0, |cost| u64::from(*cost))
}

/// Bits of surprise per character pair of `label` (its UTF-8 bytes, in any
/// letter case, with its start and end counted as pairs): about 3.5 to 4.5
/// for real names, 6 to 8 for random letters and digits. An empty label
/// scores 0.
pub fn name_surprise(label: &str) -> f64 {
    if label.is_empty() {
        return 0.0;
    }
    let mut previous = 0;
    let mut total = 0u64;
    for byte in label.bytes() {
        let next = symbol(byte);
        total += pair_cost(previous, next);
        previous = next;
    }
    total += pair_cost(previous, 0);
    let pairs = label.len() as u64 + 1;
    // One division of two exact integers: rounded the same in every language.
    total as f64 / (pairs * u64::from(UNITS_PER_BIT)) as f64
}

/// The ICANN rules split by kind: plain suffixes, the parents of wildcard
/// rules (`ck` for `*.ck`) and exceptions without their `!`.
struct Suffixes {
    plain: std::collections::HashSet<&'static str>,
    wildcard_parents: std::collections::HashSet<&'static str>,
    exceptions: std::collections::HashSet<&'static str>,
}

fn suffixes() -> &'static Suffixes {
    static SUFFIXES: std::sync::OnceLock<Suffixes> = std::sync::OnceLock::new();
    SUFFIXES.get_or_init(|| {
        let mut out = Suffixes {
            plain: Default::default(),
            wildcard_parents: Default::default(),
            exceptions: Default::default(),
        };
        for rule in ICANN_SUFFIXES.split(',') {
            if let Some(parent) = rule.strip_prefix("*.") {
                out.wildcard_parents.insert(parent);
            } else if let Some(exception) = rule.strip_prefix('!') {
                out.exceptions.insert(exception);
            } else {
                out.plain.insert(rule);
            }
        }
        out
    })
}

/// The registered domain of `name` (lower case, no trailing dot, as DNS
/// compares names): its public suffix by the ICANN section of the public
/// suffix list, and the label left of it ("example.co.uk" for
/// "a.example.co.uk", "example.com" for "a.b.example.com"). A name that is
/// a public suffix itself, or has one label, is its own registered domain.
/// A suffix the list does not know counts as one label, as the list's
/// default rule says.
pub fn registered_domain(name: &str) -> &str {
    let rules = suffixes();
    let starts = std::iter::once(0).chain(name.match_indices('.').map(|(i, _)| i + 1));
    // The longest rule that matches wins, an exception before all.
    let mut suffix_start = None;
    for start in starts {
        let suffix = &name[start..];
        let parent = suffix.find('.').map(|dot| start + dot + 1);
        if rules.exceptions.contains(suffix) {
            suffix_start = parent;
        } else if rules.plain.contains(suffix) || parent.is_some_and(|p| rules.wildcard_parents.contains(&name[p..])) {
            suffix_start = Some(start);
        }
        if suffix_start.is_some() {
            break;
        }
    }
    let suffix_start = suffix_start.or_else(|| name.rfind('.').map(|dot| dot + 1)).unwrap_or(0);
    if suffix_start == 0 {
        return name;
    }
    // The label left of the suffix.
    let left = name[..suffix_start - 1].rfind('.').map_or(0, |dot| dot + 1);
    &name[left..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_names_read_as_real_and_random_ones_as_generated() {
        for real in ["jwplatform", "3gppnetwork", "googleapis", "microsoftonline", "fileserver01", "example-bank"] {
            assert!(name_surprise(real) < 6.0, "{real}: {}", name_surprise(real));
        }
        for generated in ["xkqzvbrtplmnw", "qzj4x8kfw2vbt", "bcdfghjklmnpq"] {
            assert!(name_surprise(generated) >= 6.0, "{generated}: {}", name_surprise(generated));
        }
        assert_eq!(name_surprise("JwPlatform"), name_surprise("jwplatform"));
        assert_eq!(name_surprise(""), 0.0);
    }

    #[test]
    fn registered_domains_follow_the_icann_rules() {
        for (name, domain) in [
            ("a.b.example.com", "example.com"),
            ("a.example.co.uk", "example.co.uk"),
            ("example.co.uk", "example.co.uk"),
            ("co.uk", "co.uk"),
            ("uk", "uk"),
            ("localhost", "localhost"),
            ("x.corp.example", "corp.example"),
            ("4.3.2.1.in-addr.arpa", "1.in-addr.arpa"),
            // A wildcard rule, and its exception.
            ("a.b.c.ck", "b.c.ck"),
            ("a.www.ck", "www.ck"),
            // Punycode, as resolvers log other scripts.
            ("www.example.xn--fiqs8s", "example.xn--fiqs8s"),
            // The private section is left out: a cloud name is Amazon's.
            ("events-1.us-east-1.elb.amazonaws.com", "amazonaws.com"),
            ("foo.github.io", "github.io"),
            // Malformed names give a part of themselves, never a panic.
            (".com", ".com"),
            ("a..b", ".b"),
            ("", ""),
        ] {
            assert_eq!(registered_domain(name), domain, "{name}");
        }
    }

    #[test]
    fn the_table_is_whole() {
        assert_eq!(PAIR_COSTS.len(), SYMBOLS * SYMBOLS * 2);
        assert!(PAIR_COSTS.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}

//! Word-at-a-time (SWAR) byte searches and small readers shared by the
//! payload scanner and the access-line template reader.

pub(super) const ONES: u64 = 0x0101_0101_0101_0101;
pub(super) const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is `"`, `\\` or a control
/// character, and maybe of bytes above the first such one: the lowest set
/// bit always marks a real one.
#[inline]
pub(super) fn specials(w: u64) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    ((quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash)
        | (w.wrapping_sub(ONES * 0x20) & !w))
        & HIGHS
}

/// The high bit of each byte of `w` that is `"`, `\\` or a control
/// character, and of no other byte.
#[inline]
pub(super) fn specials_exact(w: u64) -> u64 {
    bytes_equal(w, b'"') | bytes_equal(w, b'\\') | controls(w)
}

pub(super) const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The high bit of each byte of `w` that is `c`, and of no other byte.
#[inline]
pub(super) fn bytes_equal(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * u64::from(c));
    !(((x & LOW7) + LOW7) | x) & HIGHS
}

/// The high bit of each byte of `w` that is a control character, and of no other byte.
#[inline]
pub(super) fn controls(w: u64) -> u64 {
    !((w & LOW7) + ONES * 0x60) & !w & HIGHS
}

/// The position of the first byte in `bytes` from `from` that `wanted`
/// accepts, eight bytes at a time: `marks` sets the high bit of each wanted
/// byte of a word, `wanted` judges the tail shorter than a word.
#[inline]
pub(super) fn find_by_word(
    bytes: &[u8],
    mut from: usize,
    marks: impl Fn(u64) -> u64,
    wanted: impl Fn(u8) -> bool,
) -> Option<usize> {
    while let Some(chunk) = bytes.get(from..from.checked_add(8)?) {
        let m = marks(u64::from_le_bytes(chunk.try_into().ok()?));
        if m != 0 {
            return Some(from + (m.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    bytes
        .get(from..)?
        .iter()
        .position(|&b| wanted(b))
        .map(|i| from + i)
}

/// The position of the first backslash in `bytes` from `from`, eight bytes at a time.
pub(crate) fn find_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    find_by_word(bytes, from, |w| bytes_equal(w, b'\\'), |b| b == b'\\')
}

/// The position of the first `"`, `\\` or control character in `bytes`
/// from `from`, eight bytes at a time.
pub(crate) fn find_special(bytes: &[u8], from: usize) -> Option<usize> {
    find_by_word(bytes, from, specials, |b| {
        b == b'"' || b == b'\\' || b < 0x20
    })
}

/// The non-negative integer of 1 to 18 digits without a leading zero at
/// `at` (so it fits `i64` and `u64` alike), and the position after its
/// digits; `None` for anything else, longer numbers included.
#[inline]
pub(crate) fn read_uint(bytes: &[u8], at: usize) -> Option<(i64, usize)> {
    let digits = bytes.get(at..)?;
    let mut n: i64 = 0;
    let mut len = 0;
    for &b in digits.iter().take(18) {
        if !b.is_ascii_digit() {
            break;
        }
        n = n * 10 + i64::from(b - b'0');
        len += 1;
    }
    let more = digits.get(len).is_some_and(u8::is_ascii_digit);
    if len == 0 || more || (len > 1 && digits[0] == b'0') {
        return None;
    }
    Some((n, at + len))
}

/// The four hex digits of a `\\u` escape at `at`.
pub(super) fn hex4(text: &str, at: usize) -> Option<u32> {
    let hex = text.get(at..at + 4)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// The byte of an escape sequence's second character, for the one-byte escapes.
pub(super) fn simple_escape(c: u8) -> Option<u8> {
    Some(match c {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        _ => return None,
    })
}

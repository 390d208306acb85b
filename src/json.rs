//! A small JSON writer for the admin answers (`/pub`, `/channels`, `/stats`, `/sign`),
//! so no answer is built with `format!` and every string goes through the one escaper
//! of `event.rs`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::event::{push_decimal, push_json_str};

/// An object being written.
pub struct Obj<'a> {
    out: &'a mut BytesMut,
    first: bool,
}

impl Obj<'_> {
    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.put_u8(b',');
        }
        self.first = false;
        push_json_str(self.out, k);
        self.out.put_u8(b':');
    }

    /// `"k":"v"`.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        push_json_str(self.out, v);
        self
    }

    /// `"k":n`.
    pub fn num(&mut self, k: &str, n: u64) -> &mut Self {
        self.key(k);
        push_decimal(self.out, n);
        self
    }

    /// `"k":{…}`.
    pub fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj)) -> &mut Self {
        self.key(k);
        write_obj(self.out, f);
        self
    }

    /// `"k":[{…},…]`, one object per item.
    pub fn arr<T>(
        &mut self,
        k: &str,
        items: impl IntoIterator<Item = T>,
        f: impl FnMut(&mut Obj, T),
    ) -> &mut Self {
        self.key(k);
        write_arr(self.out, items, f);
        self
    }
}

fn write_arr<T>(
    out: &mut BytesMut,
    items: impl IntoIterator<Item = T>,
    mut f: impl FnMut(&mut Obj, T),
) {
    out.put_u8(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        write_obj(out, |o| f(o, item));
    }
    out.put_u8(b']');
}

fn write_obj(out: &mut BytesMut, f: impl FnOnce(&mut Obj)) {
    out.put_u8(b'{');
    f(&mut Obj { out, first: true });
    out.put_u8(b'}');
}

/// One object.
pub fn object(f: impl FnOnce(&mut Obj)) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    write_obj(&mut out, f);
    out.freeze()
}

/// An array with one object per item.
pub fn array<T>(items: impl IntoIterator<Item = T>, f: impl FnMut(&mut Obj, T)) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    write_arr(&mut out, items, f);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_escaped_json() {
        let b = object(|o| {
            o.str("a", "x\"<y").num("n", 7).obj("in", |o| {
                o.num("z", 0);
            });
            o.arr("l", [3u64], |o, n| {
                o.num("m", n);
            });
        });
        assert_eq!(
            &b[..],
            br#"{"a":"x\"\u003cy","n":7,"in":{"z":0},"l":[{"m":3}]}"#
        );
        let a = array([1u64, 2], |o, n| {
            o.num("n", n);
        });
        assert_eq!(&a[..], br#"[{"n":1},{"n":2}]"#);
        assert_eq!(&array(Vec::<u64>::new(), |_, _| {})[..], b"[]");
        let _: serde_json::Value = serde_json::from_slice(&b).unwrap();
    }
}

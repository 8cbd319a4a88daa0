//! Property-test strategies for every jute type (test builds only).

use bytes::Bytes;
use proptest::prelude::*;

/// A proptest strategy covering a type's whole encodable range, nulls included.
pub(crate) trait Arb: Sized + std::fmt::Debug {
    /// The strategy.
    fn arb() -> BoxedStrategy<Self>;
}

macro_rules! arb_any {
    ($($t:ty),*) => {$(
        impl Arb for $t {
            fn arb() -> BoxedStrategy<Self> {
                any::<$t>().boxed()
            }
        }
    )*};
}
arb_any!(i32, i64, bool, Option<bool>);

/// Strings within the Basic Multilingual Plane: the ones jute round-trips exactly (see
/// `utf8` for what happens to the others, tested there).
fn bmp_string() -> BoxedStrategy<String> {
    "[\\x{0}-\\x{ffff}]{0,24}".boxed()
}

impl Arb for String {
    fn arb() -> BoxedStrategy<Self> {
        bmp_string()
    }
}

impl Arb for Option<String> {
    fn arb() -> BoxedStrategy<Self> {
        proptest::option::of(bmp_string()).boxed()
    }
}

impl Arb for Option<Bytes> {
    fn arb() -> BoxedStrategy<Self> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from))
            .boxed()
    }
}

impl<T: Arb + 'static> Arb for Option<Vec<T>> {
    fn arb() -> BoxedStrategy<Self> {
        proptest::option::of(proptest::collection::vec(T::arb(), 0..4)).boxed()
    }
}

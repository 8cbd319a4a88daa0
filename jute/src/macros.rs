//! The two declarative macros the crate is written with: `records!` turns a compact
//! description of jute records into types with their [`Record`](crate::Record)
//! implementations, and `int_enum!` turns a list of protocol constants into an enum with
//! exact `i32` conversions.

/// Declares jute records. Each entry is
///
/// ```text
/// /// docs
/// pub struct RustName("org.apache.zookeeper.JavaName") {
///     /// docs
///     pub field: RustType,
/// }
/// ```
///
/// Fields encode in declaration order, each through its type's `Record` implementation.
macro_rules! records {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident($jute:literal) {
            $(
                $(#[$fmeta:meta])*
                pub $field:ident : $ty:ty
            ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// The fully qualified name of the Java class ZooKeeper generates for this record.
            pub const JUTE_NAME: &'static str = $jute;
        }

        impl $crate::Record for $name {
            const MIN_LEN: usize = 0 $(+ <$ty as $crate::Record>::MIN_LEN)*;

            #[allow(unused_variables)]
            fn encode<B: ::bytes::BufMut>(&self, out: &mut B) {
                $( $crate::Record::encode(&self.$field, out); )*
            }

            fn encoded_len(&self) -> usize {
                0 $(+ $crate::Record::encoded_len(&self.$field))*
            }

            #[allow(unused_variables)]
            fn decode(r: &mut $crate::Reader) -> Result<Self, $crate::DecodeError> {
                Ok(Self {
                    $( $field: r.field(stringify!($name), stringify!($field))?, )*
                })
            }
        }

        #[cfg(test)]
        impl $crate::testing::Arb for $name {
            fn arb() -> ::proptest::strategy::BoxedStrategy<Self> {
                use ::proptest::strategy::Strategy;
                ($( <$ty as $crate::testing::Arb>::arb(), )*)
                    .prop_map(|($($field,)*)| Self { $($field),* })
                    .boxed()
            }
        }
    )*};
}

/// Declares a fieldless enum of protocol constants with its exact `i32` values,
/// `TryFrom<i32>` (unknown values are returned as the error) and `From<Enum> for i32`.
macro_rules! int_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i32)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The protocol's number for this value.
            pub const fn code(self) -> i32 {
                self as i32
            }

            /// The variant's name, as ZooKeeper spells the constant.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => stringify!($variant), )*
                }
            }
        }

        impl TryFrom<i32> for $name {
            type Error = i32;
            fn try_from(value: i32) -> Result<Self, i32> {
                match value {
                    $( v if v == $value => Ok($name::$variant), )*
                    other => Err(other),
                }
            }
        }

        impl From<$name> for i32 {
            fn from(value: $name) -> i32 {
                value as i32
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

pub(crate) use {int_enum, records};

//! Raw SQL statements that PostgreSQL prepares once per connection.
//!
//! `diesel::sql_query` marks its statement unsafe to cache, so diesel-async
//! prepares it anew each time it runs (a round trip of its own) and
//! PostgreSQL parses and plans it again: on the engine's hot path that was a
//! tenth of the database's CPU. [`Prepared`] is the same raw SQL with the same
//! binds, marked safe to cache, so the connection's statement cache keeps it
//! by its text.
//!
//! The SQL numbers its placeholders `$1`, `$2`, ... in the order they appear,
//! each once, and the binds come in that order: Diesel numbers the binds it
//! pushes itself, and this module checks that the two agree.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::RunQueryDslSupport;
use diesel::result::{Error as DieselError, QueryResult};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

/// A raw SQL statement with its binds, cached per connection.
pub(crate) struct Prepared<B> {
    sql: &'static str,
    binds: B,
}

/// The statement `sql` with `binds`, a tuple of [`bind`]s in placeholder order.
pub(crate) fn prepared<B: BindList>(sql: &'static str, binds: B) -> Prepared<B> {
    Prepared { sql, binds }
}

/// One bound value of SQL type `ST`.
pub(crate) struct Bind<ST, V> {
    value: V,
    sql_type: PhantomData<fn() -> ST>,
}

/// `value` bound as SQL type `ST`.
pub(crate) fn bind<ST, V>(value: V) -> Bind<ST, V> {
    Bind {
        value,
        sql_type: PhantomData,
    }
}

/// The binds of a statement, pushed one at a time at their placeholders.
pub(crate) trait BindList {
    /// Pushes bind number `index` (from 0); an error past the last one.
    fn push<'b>(&'b self, index: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

impl<ST, V> Bind<ST, V>
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, V>(&self.value)
    }
}

macro_rules! bind_list {
    ($(($index:tt, $st:ident, $value:ident)),+) => {
        impl<$($st, $value),+> BindList for ($(Bind<$st, $value>,)+)
        where
            $(Pg: HasSqlType<$st>, $value: ToSql<$st, Pg>,)+
        {
            fn push<'b>(&'b self, index: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
                match index {
                    $($index => self.$index.push(out),)+
                    _ => Err(placeholder_error("a placeholder has no bind")),
                }
            }
        }
    };
}

bind_list!((0, S0, V0));
bind_list!((0, S0, V0), (1, S1, V1));
bind_list!((0, S0, V0), (1, S1, V1), (2, S2, V2));
bind_list!((0, S0, V0), (1, S1, V1), (2, S2, V2), (3, S3, V3));
bind_list!(
    (0, S0, V0),
    (1, S1, V1),
    (2, S2, V2),
    (3, S3, V3),
    (4, S4, V4)
);
bind_list!(
    (0, S0, V0),
    (1, S1, V1),
    (2, S2, V2),
    (3, S3, V3),
    (4, S4, V4),
    (5, S5, V5)
);
bind_list!(
    (0, S0, V0),
    (1, S1, V1),
    (2, S2, V2),
    (3, S3, V3),
    (4, S4, V4),
    (5, S5, V5),
    (6, S6, V6)
);
bind_list!(
    (0, S0, V0),
    (1, S1, V1),
    (2, S2, V2),
    (3, S3, V3),
    (4, S4, V4),
    (5, S5, V5),
    (6, S6, V6),
    (7, S7, V7)
);
bind_list!(
    (0, S0, V0),
    (1, S1, V1),
    (2, S2, V2),
    (3, S3, V3),
    (4, S4, V4),
    (5, S5, V5),
    (6, S6, V6),
    (7, S7, V7),
    (8, S8, V8),
    (9, S9, V9),
    (10, S10, V10)
);

impl<B> QueryId for Prepared<B> {
    type QueryId = ();

    // Not static: the statement cache keys it by its SQL text instead.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<B> Query for Prepared<B> {
    type SqlType = Untyped;
}

// Makes `diesel_async::RunQueryDsl` (load, execute) available, as for `sql_query`.
impl<B> RunQueryDslSupport for Prepared<B> {}

impl<B: BindList> QueryFragment<Pg> for Prepared<B> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut rest = self.sql;
        let mut expected = 1;
        while let Some(dollar) = rest.find('$') {
            let digits = rest[dollar + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            if digits == 0 {
                out.push_sql(&rest[..=dollar]);
                rest = &rest[dollar + 1..];
                continue;
            }
            let number: usize = rest[dollar + 1..dollar + 1 + digits]
                .parse()
                .map_err(|_| placeholder_error("a placeholder number is too large"))?;
            if number != expected {
                return Err(placeholder_error(
                    "placeholders must appear once each, in order",
                ));
            }
            out.push_sql(&rest[..dollar]);
            self.binds.push(number - 1, &mut out)?;
            expected += 1;
            rest = &rest[dollar + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

fn placeholder_error(message: &'static str) -> DieselError {
    DieselError::QueryBuilderError(message.into())
}

#[cfg(test)]
mod tests {
    use diesel::pg::PgQueryBuilder;
    use diesel::query_builder::QueryBuilder;
    use diesel::sql_types::{Int8, Text};

    use super::*;

    fn render(query: &impl QueryFragment<Pg>) -> QueryResult<String> {
        let mut builder = PgQueryBuilder::default();
        query.to_sql(&mut builder, &Pg)?;
        Ok(builder.finish())
    }

    #[test]
    fn renders_placeholders_where_the_sql_has_them() {
        let query = prepared(
            "SELECT $1::text || 'a$' , $2 + 1",
            (bind::<Text, _>("x"), bind::<Int8, _>(7_i64)),
        );
        assert_eq!(render(&query).unwrap(), "SELECT $1::text || 'a$' , $2 + 1");
    }

    #[test]
    fn refuses_placeholders_out_of_order_or_without_a_bind() {
        let swapped = prepared(
            "SELECT $2, $1",
            (bind::<Text, _>("x"), bind::<Int8, _>(7_i64)),
        );
        assert!(render(&swapped).is_err(), "placeholders out of order");
        let missing = prepared("SELECT $1, $2", (bind::<Text, _>("x"),));
        assert!(render(&missing).is_err(), "a placeholder without a bind");
    }
}

//! Writing AREAs and reactions. The AREA platform owns these tables; the worker
//! writes them only for demos, benchmarks and tests.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use crate::error::Error;
use crate::pool::Store;
use crate::schema::{areas, reactions};

/// An AREA to create.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = areas)]
pub struct NewArea {
    /// Its id.
    pub id: Uuid,
    /// A name for people.
    pub name: String,
    /// Whether its events run anything.
    pub enabled: bool,
}

/// A reaction to create.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = reactions)]
pub struct NewReaction {
    /// Its id.
    pub id: Uuid,
    /// Its AREA.
    pub area_id: Uuid,
    /// Its service.
    pub service: String,
    /// Its configuration, templates included.
    pub config: Value,
    /// Whether it runs.
    pub enabled: bool,
    /// Its order within the AREA.
    pub position: i32,
}

impl Store {
    /// Inserts AREAs and reactions in one transaction.
    pub async fn insert_areas(
        &self,
        new_areas: &[NewArea],
        new_reactions: &[NewReaction],
    ) -> Result<(), Error> {
        use diesel_async::AsyncConnection;

        let mut connection = self.connection().await?;
        connection
            .transaction::<_, diesel::result::Error, _>(async |connection| {
                for chunk in new_areas.chunks(1000) {
                    diesel::insert_into(areas::table)
                        .values(chunk)
                        .execute(connection)
                        .await?;
                }
                for chunk in new_reactions.chunks(1000) {
                    diesel::insert_into(reactions::table)
                        .values(chunk)
                        .execute(connection)
                        .await?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }
}

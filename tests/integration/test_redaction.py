"""Nothing secret leaves a process: database errors without their statements' parameters."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared import db


@pytest.mark.parametrize("engine_of", [db.make_engine, db.single_use_engine], ids=["pooled", "single-use"])
async def test_a_failing_statements_parameters_stay_out_of_its_error(database_url, engine_of):
    engine = engine_of(database_url)
    try:
        with pytest.raises(DBAPIError) as failed:
            async with engine.connect() as conn:
                await conn.execute(text("INSERT INTO nowhere (note) VALUES (:note)"), {"note": "param-secret-31"})
    finally:
        await engine.dispose()

    assert "nowhere" in str(failed.value) and "param-secret-31" not in str(failed.value)

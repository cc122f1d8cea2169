"""Reading the warehouse: `curate sql` and `curate status`. Both open it read-only, so they can run
while a curation writes."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.errors import reported
from cli.options import RowsFormatOpt, WarehouseConfigOpt, WarehouseOpt, warehouse_path
from cli.render import RowsFormat, print_rows

STATUS_QUERY = """SELECT run_id, status, started_at, finished_at, docs_in, docs_out, docs_rejected, input_errors, output_dir
               FROM runs ORDER BY started_at"""


def sql(
    query: Annotated[str, typer.Argument(help="SQL over the views documents, rejected, runs, stage_stats, input_errors")],
    config: WarehouseConfigOpt = None,
    warehouse: WarehouseOpt = None,
    fmt: RowsFormatOpt = RowsFormat.table,
) -> None:
    """Query the warehouse (opened read-only)."""
    from warehouse.warehouse import Warehouse

    with reported():
        columns, rows = Warehouse(warehouse_path(config, warehouse)).query(query)
    print_rows(columns, rows, fmt)


def status(config: WarehouseConfigOpt = None, warehouse: WarehouseOpt = None, fmt: RowsFormatOpt = RowsFormat.table) -> None:
    """List runs: status, documents in/out/rejected, input errors."""
    from warehouse.warehouse import Warehouse

    with reported():
        columns, rows = Warehouse(warehouse_path(config, warehouse)).query(STATUS_QUERY)
    print_rows(columns, rows, fmt)

"""DAGs of tests/bench/airflow_xcom.py: Get-LargeOutput through our operator and through Airflow's PSRP provider.

Counts come from the environment (PSRP_BENCH_XCOM_COUNTS, PSRP_BENCH_STREAM_COUNTS), the
peer's port from PSRP_PORT (the original provider ignores the connection's port).
"""

import datetime
import os

from airflow.providers.microsoft.psrp.operators.psrp import PsrpOperator as OriginalPsrpOperator
from airflow.sdk import DAG, task

from psrp_client.airflow.operators import PsrpOperator

WSMAN = {"port": int(os.environ.get("PSRP_PORT", "5985")), "negotiate_service": "HTTP",
         "operation_timeout": 20, "read_timeout": 120}
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def _counts(name: str, default: str) -> list:
    return [int(c) for c in os.environ.get(name, default).split(",") if c]


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, default_args={"retries": 0})


with _dag("bench_noop") as bench_noop:

    @task
    def noop() -> None:
        return None

    noop()

for count in _counts("PSRP_BENCH_XCOM_COUNTS", "10000"):
    with _dag(f"bench_ours_xcom_{count}") as dag:
        # JEA.Maintenance: ours needs no ConvertTo-Json.
        PsrpOperator(task_id="large", psrp_conn_id="psrp_bench_jea", cmdlet="Get-LargeOutput",
                     parameters={"Count": count}, wsman_options=WSMAN)
    globals()[dag.dag_id] = dag
    with _dag(f"bench_original_xcom_{count}") as dag:
        # Microsoft.PowerShell: the original appends ConvertTo-Json, which JEA.Maintenance does not expose.
        OriginalPsrpOperator(task_id="large", psrp_conn_id="psrp_bench_full", cmdlet="Get-LargeOutput",
                             parameters={"Count": count}, wsman_options=WSMAN)
    globals()[dag.dag_id] = dag

for count in _counts("PSRP_BENCH_XCOM_COUNTS", "10000"):
    with _dag(f"bench_airflow_xcom_{count}") as dag:

        @task(task_id="large")
        def same_xcom(count: int = count) -> list:
            """Returns the XCom our task stored (saved by the harness; read in execute), without any
            PSRP: what is left of the task's time after execute is Airflow storing that XCom."""
            import json

            with open(os.path.join(os.environ["AIRFLOW_HOME"], f"bench_ours_xcom_{count}.xcom.json")) as f:
                return json.load(f)

        same_xcom()
    globals()[dag.dag_id] = dag

for count in _counts("PSRP_BENCH_STREAM_COUNTS", "10000,50000"):
    with _dag(f"bench_ours_stream_{count}") as dag:
        # No XCom, output not logged: objects are decoded and dropped as they arrive.
        PsrpOperator(task_id="large", psrp_conn_id="psrp_bench_jea", cmdlet="Get-LargeOutput",
                     parameters={"Count": count}, wsman_options=WSMAN, do_xcom_push=False, log_output=False)
    globals()[dag.dag_id] = dag

for count in _counts("PSRP_BENCH_ORIGINAL_STREAM_COUNTS", "10000"):
    with _dag(f"bench_original_stream_{count}") as dag:
        # No XCom: the original logs each object's ToString and pypsrp keeps them all.
        OriginalPsrpOperator(task_id="large", psrp_conn_id="psrp_bench_jea", cmdlet="Get-LargeOutput",
                             parameters={"Count": count}, wsman_options=WSMAN, do_xcom_push=False)
    globals()[dag.dag_id] = dag

"""The same DAGs through Airflow's PSRP provider (pypsrp) and through ours (psrp_client.airflow).

Each DAG is built twice by one function that takes the operator class: the DAG code is
the same, only the import differs. The test peer's port changes on every start: it comes
from PSRP_PORT (the original provider ignores the connection's port, so it also goes in
``wsman_options``; ours would take it from the connection).
"""

import datetime
import os

from airflow.providers.microsoft.psrp.operators.psrp import PsrpOperator as OriginalPsrpOperator
from airflow.sdk import DAG
from pypsrp.complex_objects import Command, CommandParameter

from psrp_client.airflow.operators import PsrpOperator

WSMAN = {"port": int(os.environ.get("PSRP_PORT", "5985")), "negotiate_service": "HTTP"}
# The provider's documented session init, as a pypsrp Command.
TRACE = Command(cmd="Set-PSDebug", args=[CommandParameter(name="Trace", value=1)], end_of_statement=True)
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def _dag(dag_id: str) -> DAG:
    # retries=0: dag.test() would wait out retry_delay.
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, default_args={"retries": 0})


def restart_dag(dag_id: str, operator: type, conn_id: str) -> DAG:
    """The provider's classic example: Restart-Computer -Force with Set-PSDebug -Trace 1 first."""
    with _dag(dag_id) as dag:
        operator(
            task_id="restart",
            psrp_conn_id=conn_id,
            cmdlet="Restart-Computer",
            parameters={"Force": None},
            psrp_session_init=TRACE,
            wsman_options=WSMAN,
        )
    return dag


def files_dag(dag_id: str, operator: type, conn_id: str, **extra: object) -> DAG:
    """Get-ChildItem output pushed to XCom."""
    with _dag(dag_id) as dag:
        operator(
            task_id="files",
            psrp_conn_id=conn_id,
            cmdlet="Get-ChildItem",
            parameters={"Path": "C:\\Temp"},
            wsman_options=WSMAN,
            **extra,
        )
    return dag


def error_dag(dag_id: str, operator: type, conn_id: str) -> DAG:
    """A command that writes an error record."""
    with _dag(dag_id) as dag:
        operator(
            task_id="missing",
            psrp_conn_id=conn_id,
            cmdlet="Get-Item",
            parameters={"Path": "C:\\nope"},
            wsman_options=WSMAN,
        )
    return dag


def ours_only_dags() -> list:
    """What only our operator does: exit codes, output logged as JSON, a failing deferred job."""
    with _dag("ours_exit_code_full") as exit_code:
        PsrpOperator(task_id="script", psrp_conn_id="psrp_peer_full", powershell="Write-Output 'before'; exit 3")
    with _dag("ours_log_output_jea") as log_output:
        PsrpOperator(task_id="files", psrp_conn_id="psrp_peer_jea", cmdlet="Get-ChildItem",
                     parameters={"Path": "C:\\Temp"}, do_xcom_push=False)
    with _dag("ours_error_jea_deferrable") as deferred_error:
        PsrpOperator(task_id="missing", psrp_conn_id="psrp_peer_jea", cmdlet="Get-Item",
                     parameters={"Path": "C:\\nope"}, deferrable=True)
    # A deferred job whose triggerer proof.py kills (SIGKILL) while the command runs: the output
    # comes after the sleep, so all of it is read by the restarted trigger.
    with _dag("ours_killed_triggerer_full") as killed:
        PsrpOperator(task_id="job", psrp_conn_id="psrp_peer_full", deferrable=True, idle_timeout=600,
                     powershell="Start-Sleep -Seconds 3; Get-ChildItem -Path C:\\Temp")
    return [exit_code, log_output, deferred_error, killed]


# psrp_peer_jea: JEA.Maintenance over Kerberos/HTTP; psrp_peer_full: Microsoft.PowerShell (see proof.py).
ours_restart_jea = restart_dag("ours_restart_jea", PsrpOperator, "psrp_peer_jea")
original_restart_jea = restart_dag("original_restart_jea", OriginalPsrpOperator, "psrp_peer_jea")
ours_files_jea = files_dag("ours_files_jea", PsrpOperator, "psrp_peer_jea")
original_files_jea = files_dag("original_files_jea", OriginalPsrpOperator, "psrp_peer_jea")
original_files_full = files_dag("original_files_full", OriginalPsrpOperator, "psrp_peer_full")
ours_error_jea = error_dag("ours_error_jea", PsrpOperator, "psrp_peer_jea")
ours_files_jea_deferrable = files_dag("ours_files_jea_deferrable", PsrpOperator, "psrp_peer_jea", deferrable=True)
ours_exit_code_full, ours_log_output_jea, ours_error_jea_deferrable, ours_killed_triggerer_full = ours_only_dags()

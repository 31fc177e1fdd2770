"""Apache Airflow provider on psrp: ``PsrpHook``, ``PsrpOperator`` (also deferrable) and ``PsrpTrigger``.

A DAG written for ``apache-airflow-providers-microsoft-psrp`` switches by changing its
imports::

    from psrp_client.airflow.operators import PsrpOperator   # was airflow.providers.microsoft.psrp.operators.psrp
    from psrp_client.airflow.hooks import PsrpHook           # was airflow.providers.microsoft.psrp.hooks.psrp

Airflow finds the provider through the ``apache_airflow_provider`` entry point
(``get_provider_info`` below); its connection type is ``psrp_client``. See the README's
"Airflow" section.
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Provider metadata for Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    try:
        from importlib.metadata import version

        package_version = version("psrp-client")
    except Exception:  # running from a source tree
        package_version = "0.0.0"
    integration = "Windows PowerShell Remoting Protocol (psrp)"
    return {
        "package-name": "psrp-client",
        "name": "PowerShell Remoting Protocol on psrp",
        "description": "Runs cmdlets and scripts on Windows hosts over WinRM/PSRP with psrp (Rust): "
        "Kerberos, NTLM, JEA endpoints, XCom as JSON converted on the worker, deferrable jobs.",
        "versions": [package_version],
        "integrations": [{"integration-name": integration, "tags": ["protocol"]}],
        "operators": [{"integration-name": integration, "python-modules": ["psrp_client.airflow.operators"]}],
        "hooks": [{"integration-name": integration, "python-modules": ["psrp_client.airflow.hooks"]}],
        "triggers": [{"integration-name": integration, "python-modules": ["psrp_client.airflow.triggers"]}],
        "connection-types": [
            {"hook-class-name": "psrp_client.airflow.hooks.PsrpHook", "connection-type": "psrp_client"}
        ],
    }

"""Titles over HTTP with a trained checkpoint: `python serve.py checkpoint=DIR [server.port=8000 ...]`.

    curl -s localhost:8000/v1/titles -H 'Content-Type: application/json' -d '{"abstracts": ["摘要……"], "num_return": 3}'

POST /v1/titles, GET /healthz, GET / (a page: paste an abstract, get titles), GET /openapi.json (/docs with
server.docs=true); binds to loopback unless server.host says otherwise (warned about). The app and its micro-batching: seq2seq_rdrop/serving.py;
options: conf/serve.yaml, `python serve.py --help`. Exit status: 0 stopped, 1 bad checkpoint, 2 bad option.
"""
import sys

import hydra
from omegaconf import DictConfig

from seq2seq_rdrop.cli import report_errors, run_hydra_app


@hydra.main(version_base="1.3", config_path="conf", config_name="serve")
def _hydra_main(cfg: DictConfig) -> None:
    with report_errors("serve.py"):
        from seq2seq_rdrop.serving import run_server

        run_server(cfg)


def main() -> int:
    return run_hydra_app(_hydra_main, "serve.py")


if __name__ == "__main__":
    sys.exit(main())

"""Serve the web example: `python -m examples.web [--model provider:name] [--host 127.0.0.1] [--port 8000]`."""

from __future__ import annotations

import argparse

import uvicorn

from .app import create_app
from .research import Desk, Setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--model', help="a real model for every agent, e.g. 'openai:gpt-5-mini' (default: scripted)")
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8000)
    args = parser.parse_args()
    print(f'Open http://{args.host}:{args.port} (Ctrl+C stops the server, and every task with it)')
    uvicorn.run(create_app(Desk(Setup(model=args.model))), host=args.host, port=args.port, log_level='warning')


if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""The brokers of bench scenario 11 (fan-out): a JetStream stream and a
RabbitMQ exchange with one durable queue, named per round.

    brokers.py setup NAME     # stream NAME on subject bench.NAME; exchange and queue NAME, key "bench"
    brokers.py count NAME     # prints "<messages in the stream> <messages in the queue>"
    brokers.py teardown NAME

Needs nats-py and pika (bench/run.sh installs them into a venv of its own).
NATS_URL and AMQP_URL default to this machine's brokers.
"""
import asyncio
import os
import sys

import nats
import pika

NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


async def stream(action, name):
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        if action == "setup":
            await js.add_stream(name=name, subjects=[f"bench.{name}"])
            return None
        if action == "count":
            return (await js.stream_info(name)).state.messages
        await js.delete_stream(name)
        return None
    finally:
        await nc.close()


def queue(action, name):
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    try:
        if action == "setup":
            channel.exchange_declare(exchange=name, exchange_type="direct", durable=True)
            channel.queue_declare(queue=name, durable=True)
            channel.queue_bind(queue=name, exchange=name, routing_key="bench")
            return None
        if action == "count":
            return channel.queue_declare(queue=name, passive=True).method.message_count
        channel.queue_delete(queue=name)
        channel.exchange_delete(exchange=name)
        return None
    finally:
        connection.close()


def main():
    action, name = sys.argv[1], sys.argv[2]
    in_stream = asyncio.run(stream(action, name))
    in_queue = queue(action, name)
    if action == "count":
        print(in_stream, in_queue)


if __name__ == "__main__":
    main()

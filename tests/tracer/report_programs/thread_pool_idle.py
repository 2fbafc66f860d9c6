"""The loop idle while work waits in a thread pool: each blocking read is handed to a thread
and awaited before the next one starts, so the loop has nothing to do while they run one by
one (asyncio.gather would run them side by side)."""

import asyncio
import time


def read_sensor(number):
    time.sleep(0.06)
    return number


async def main():
    readings = []
    for number in range(4):
        reading = await asyncio.to_thread(read_sensor, number)  # finding: idle-on-thread-pool
        readings.append(reading)
    print(readings)


asyncio.run(main())

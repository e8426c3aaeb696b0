from app_support.auth import Throttle


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_wrong_passwords_pause_sign_in_with_growing_pauses():
    clock = Clock()
    th = Throttle(clock)
    for _ in range(Throttle.FREE_TRIES - 1):
        th.failed()
    assert th.wait_seconds() == 0
    th.failed()
    assert th.wait_seconds() == Throttle.FIRST_PAUSE
    clock.t += Throttle.FIRST_PAUSE
    assert th.wait_seconds() == 0
    th.failed()
    assert th.wait_seconds() == 2 * Throttle.FIRST_PAUSE
    for _ in range(20):
        th.failed()
    assert th.wait_seconds() == Throttle.MAX_PAUSE
    th.succeeded()
    assert th.wait_seconds() == 0

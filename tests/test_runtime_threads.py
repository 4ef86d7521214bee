"""One predictor shared by threads: each thread's image stays its own, and the results equal, bit
for bit, the same calls made one after another — with and without IO binding."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from sam_onnx.errors import NoImageError
from sam_onnx.runtime import SamPredictor

IMAGE_SHAPES = ((300, 500), (480, 320), (77, 123), (1, 900))  # (H, W): both orientations, 1-pixel tall
THREADS = 8
BARRIER_TIMEOUT_S = 120  # a thread that dies breaks the barrier for the others instead of hanging them


def prompts(hw: tuple[int, int]) -> list[dict]:
    """A click (3 masks), and a box with a negative click (1 mask), in (x, y) original pixels."""
    h, w = hw
    return [
        {"point_coords": [[w // 2, h // 2]], "point_labels": [1]},
        {
            "point_coords": [[w // 4, h // 3]],
            "point_labels": [0],
            "box": [w // 8, 0, w - 1, h - 1],
            "multimask_output": False,
        },
    ]


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in IMAGE_SHAPES]


@pytest.fixture(scope="module")
def predictor(tiny_export) -> SamPredictor:
    return SamPredictor.from_export(tiny_export.output_dir)


@pytest.fixture(scope="module")
def binding_predictor(tiny_export) -> SamPredictor:
    predictor = SamPredictor.from_export(tiny_export.output_dir, io_binding=True)
    assert predictor.io_binding and predictor.providers[0] == "CPUExecutionProvider"
    return predictor


@pytest.fixture(scope="module")
def decoder_predictor(tiny_export) -> SamPredictor:
    """Plain runs of the graph IO binding runs: ``decoder.onnx`` (IO binding does not take the fast
    pair, which agrees with it only to float32 rounding)."""
    return SamPredictor.from_export(tiny_export.output_dir, fast_decoder=None)


def predict_image(predictor: SamPredictor, image: np.ndarray) -> list:
    predictor.set_image(image)
    return [predictor.predict(**prompt) for prompt in prompts(image.shape[:2])]


@pytest.fixture(scope="module")
def sequential(predictor, images) -> list[list]:
    """Per image, the predictions of its prompts, computed in this thread one call after another."""
    return [predict_image(predictor, image) for image in images]


@pytest.fixture(scope="module")
def sequential_decoder(decoder_predictor, images) -> list[list]:
    """As :func:`sequential`, through ``decoder.onnx`` without IO binding."""
    return [predict_image(decoder_predictor, image) for image in images]


def assert_identical(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.iou_predictions, b.iou_predictions)
        np.testing.assert_array_equal(a.low_res_logits, b.low_res_logits)


def run_threads(predictor: SamPredictor, images: list[np.ndarray], rounds: int) -> list[list[tuple]]:
    """THREADS threads; in round r thread t sets image (t + r) % 4, so two threads share each image and
    every thread changes image each round. Barriers make all threads set their images at once, and
    every image be set before any thread predicts. Returns per thread [(image index, predictions)]."""
    barrier = threading.Barrier(THREADS, timeout=BARRIER_TIMEOUT_S)

    def work(t: int) -> list[tuple]:
        done = []
        try:
            for r in range(rounds):
                k = (t + r) % len(images)
                barrier.wait()
                predictor.set_image(images[k])
                barrier.wait()
                done.append((k, [predictor.predict(**p) for p in prompts(images[k].shape[:2])]))
        except BaseException:
            barrier.abort()
            raise
        return done

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(work, t) for t in range(THREADS)]
        return [future.result() for future in futures]


def check_threads(results: list[list[tuple]], sequential: list[list], rounds: int) -> None:
    for t, done in enumerate(results):
        assert [k for k, _ in done] == [(t + r) % len(sequential) for r in range(rounds)]
        for k, predictions in done:
            assert_identical(predictions, sequential[k])


def test_sequential_results_have_each_images_size(sequential):
    for (h, w), (multi, single) in zip(IMAGE_SHAPES, sequential, strict=True):
        assert multi.masks.shape == (3, h, w) and single.masks.shape == (1, h, w)


def test_threads_sharing_a_predictor_equal_sequential_calls(predictor, images, sequential):
    rounds = 2
    check_threads(run_threads(predictor, images, rounds), sequential, rounds)


def test_image_set_in_one_thread_is_not_seen_by_another(predictor, images, sequential):
    image_set, other_asked = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def setter() -> None:
        predictor.set_image(images[2])
        image_set.set()
        other_asked.wait(BARRIER_TIMEOUT_S)
        outcome["setter"] = predictor.predict(**prompts(images[2].shape[:2])[0])

    def other() -> None:
        image_set.wait(BARRIER_TIMEOUT_S)
        try:
            outcome["other"] = predictor.predict(**prompts(images[2].shape[:2])[0])
        except Exception as exc:
            outcome["other"] = exc
        finally:
            other_asked.set()

    threads = [threading.Thread(target=setter), threading.Thread(target=other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert type(outcome["other"]) is NoImageError, outcome["other"]
    assert "set_image" in str(outcome["other"])
    assert_identical([outcome["setter"]], sequential[2][:1])


@pytest.mark.parametrize("io_binding", [False, True])
def test_threads_sharing_one_embedding_value(predictor, binding_predictor, images, io_binding):
    """The embedding as a value: THREADS threads decode different prompts on one ImageEmbedding
    (with IO binding, one OrtValue bound as input by concurrent runs)."""
    chosen = binding_predictor if io_binding else predictor
    emb = chosen.embed(images[0])
    assert (emb.device_value is not None) == io_binding
    h, w = IMAGE_SHAPES[0]
    clicks = [
        {"point_coords": [[(t + 1) * w // (THREADS + 2), h // 2]], "point_labels": [1]}
        for t in range(THREADS)
    ]
    expected = [chosen.predict(**click, embedding=emb) for click in clicks]
    barrier = threading.Barrier(THREADS, timeout=BARRIER_TIMEOUT_S)

    def work(click: dict):
        barrier.wait()
        return chosen.predict(**click, embedding=emb)

    with ThreadPoolExecutor(THREADS) as pool:
        got = list(pool.map(work, clicks))
    assert_identical(got, expected)


def test_io_binding_equals_plain_runs(predictor, binding_predictor, images, sequential_decoder):
    for image, expected in zip(images, sequential_decoder, strict=True):
        emb = binding_predictor.set_image(image)
        assert emb.device_value is not None  # the encoder wrote into an OrtValue, read by the decoder
        assert_identical([binding_predictor.predict(**p) for p in prompts(image.shape[:2])], expected)
    # read back from the OrtValue, the embedding is the one the plain run returns
    np.testing.assert_array_equal(emb.embedding, predictor.embed(images[-1]).embedding)


def test_io_binding_threads_equal_plain_sequential_calls(binding_predictor, images, sequential_decoder):
    rounds = 1
    check_threads(run_threads(binding_predictor, images, rounds), sequential_decoder, rounds)

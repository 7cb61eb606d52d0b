"""Train DSen2-CR (or its pix2pix baseline) on SEN12MS-CR, in one process or under ``torchrun`` (any number of
GPUs or nodes).

    python -m training.train --config training/configs/default.yaml --set data=/data/sen12mscr
    torchrun --nproc_per_node=4 -m training.train --config training/configs/default.yaml
    python -m training.train --config ... --resume runs/dsen2cr_carl/checkpoints/last.pt
    python -m training.train --config training/configs/pix2pix.yaml --set data=/data/sen12mscr

pix2pix (``--model pix2pix``) alternates one step of its PatchGAN discriminator and one of its U-Net
generator (:mod:`training.pix2pix`); the discriminator and its optimizer travel in the same checkpoints,
and its gradients are averaged over the processes like the generator's.

Under torchrun, each process reads ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``
from the environment and joins DistributedDataParallel (NCCL on GPUs, gloo on
CPUs); the global batch is divided by the world size. ``last.pt`` is written
atomically every ``checkpoint_every_steps`` steps and at every epoch end (plus
``epoch_<n>.pt``), with the optimizer state, step, sampler position and RNG
states, so ``--resume`` continues exactly where the run stopped.
"""

import argparse
import math
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Sequence, Tuple, cast

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from qgis_cloudremoval.core.model_info import DSEN2CR
from qgis_cloudremoval.core.progress import CoreError

from . import pix2pix
from .checkpoint import CheckpointError, load_checkpoint, make_provenance, save_checkpoint
from .config import ConfigError, TrainConfig, load_config
from .datasets import DatasetError, SplitDataset, collate, open_split
from .losses import compute_loss
from .model import OPTICAL_CHANNELS
from .networks import ARCHITECTURES, CONFIG_KEYS, architecture_of, build, describe

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm


class TrainError(CoreError):
    """The run cannot start or continue; the message says why and what to do."""


class ResumableSampler(DistributedSampler):
    """DistributedSampler that can start an epoch after its first ``skip_batches`` batches (for resume)."""

    def __init__(self, dataset: torch.utils.data.Dataset, batch_size: int, **kwargs: Any) -> None:
        super().__init__(dataset, drop_last=True, **kwargs)
        self.batch_size = batch_size
        self.skip_batches = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        usable = len(indices) - len(indices) % self.batch_size
        return iter(indices[self.skip_batches * self.batch_size:usable])

    def __len__(self) -> int:
        return max(0, (self.num_samples // self.batch_size - self.skip_batches) * self.batch_size)


class Distributed:
    """Rank, world size and device of this process, from torchrun's environment variables."""

    def __init__(self, device_choice: str) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device_choice == "cuda" and not torch.cuda.is_available():
            raise TrainError("Device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
        use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
        if use_cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")

    @property
    def is_main(self) -> bool:
        """Whether this is the first process (rank 0), the one that logs and writes checkpoints."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (nothing to wait for in one process)."""
        if self.world_size > 1:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """Mean of a scalar tensor over all processes (gloo has no AVG, so SUM / N)."""
        if self.world_size > 1:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.world_size
        return value

    def average_gradients(self, module: torch.nn.Module) -> None:
        """Average the gradients of ``module`` over all processes (for a module not wrapped in DDP)."""
        if self.world_size > 1:
            for parameter in module.parameters():
                if parameter.grad is not None:
                    dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
                    parameter.grad /= self.world_size

    def close(self) -> None:
        """Leave the process group."""
        if dist.is_initialized():
            dist.destroy_process_group()


# --------------------------------------------------------------------------- state

def rng_state() -> Dict:
    """RNG states as tensors and plain values (loadable with ``torch.load(weights_only=True)``)."""
    numpy_state = cast(Tuple[str, np.ndarray, int, int, float], np.random.get_state())  # the legacy tuple
    python_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)), "pos": int(numpy_state[2]),
                  "has_gauss": int(numpy_state[3]), "cached_gaussian": float(numpy_state[4])},
        "python": {"version": python_state[0], "state": list(python_state[1]), "gauss": python_state[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict) -> None:
    """Restore the torch, CUDA, numpy and Python random states that a checkpoint saved."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def architecture(config: TrainConfig) -> Dict:
    """The ``model_config`` of the network ``config`` trains (what its checkpoints record)."""
    return {"architecture": config.model, **{key: getattr(config, key) for key in CONFIG_KEYS[config.model]}}


#: Training state a checkpoint must hold to be resumed, per architecture.
RESUME_KEYS = {DSEN2CR: ("optimizer", "step", "epoch", "batch_in_epoch", "rng"),
               pix2pix.ARCHITECTURE: ("optimizer", "discriminator", "discriminator_optimizer", "step", "epoch",
                                      "batch_in_epoch", "rng")}


def load_resume_state(path: str, config: TrainConfig) -> Dict:
    """Weights and training state of ``path``, refused with a specific message when they do not fit ``config``."""
    try:
        model, _, extra = load_checkpoint(path)
    except CheckpointError as exc:
        raise TrainError(f"Cannot resume: {exc}") from None
    stored, wanted = architecture_of(model.config()), config.model
    if stored != wanted:
        raise TrainError(f"Cannot resume from {path}: it holds a {ARCHITECTURES[stored]} network, but this run "
                         f"trains {ARCHITECTURES[wanted]}; resume it with --model {stored} (model: {stored} in the "
                         "config), or start a new run without --resume")
    if model.config() != architecture(config):
        raise TrainError(f"Cannot resume from {path}: it holds a network with {describe(model.config())}, but this "
                         f"run is configured with {describe(architecture(config))}; resume with the same "
                         "architecture (--set num_blocks=... num_features=... unet_depth=..., --no-sar) or start a "
                         "new run")
    missing = [key for key in RESUME_KEYS[wanted] if key not in extra]
    if missing:
        raise TrainError(f"Cannot resume from {path}: it holds weights but no training state "
                         f"({', '.join(missing)} missing); resume only from checkpoints written by training.train")
    return {"state_dict": model.state_dict(), **extra}


# --------------------------------------------------------------------------- run

class Trainer:
    """One training run: data, network, optimiser, checkpoints and logs, in one process of a torchrun job."""

    def __init__(self, config: TrainConfig, resume: Optional[str] = None) -> None:
        self.config = config
        # A checkpoint that cannot be resumed is refused before any data is opened.
        resume_state = load_resume_state(resume, config) if resume else None
        self.env = Distributed(config.device)
        if config.batch_size % self.env.world_size:
            raise TrainError(f"batch_size {config.batch_size} is not divisible by the {self.env.world_size} "
                             "processes; choose a multiple of the world size")
        self.per_rank_batch = config.batch_size // self.env.world_size
        self.use_bf16 = config.precision == "bf16" and self.env.device.type == "cuda"
        self.out_dir = Path(config.out_dir)
        self.checkpoint_dir = self.out_dir / "checkpoints"

        torch.manual_seed(config.seed)  # identical initial weights on every rank
        dataset_options = dict(use_sar=config.use_sar, seed=config.seed)
        if config.data_format == "raw":
            dataset_options["patch_size"] = config.patch_size
        try:
            self.train_set = open_split(config.data, "train", config.data_format, crop=config.crop, **dataset_options)
        except DatasetError as exc:
            raise TrainError(str(exc)) from None
        self.val_set: Optional[SplitDataset]
        try:
            self.val_set = open_split(config.data, "val", config.data_format, crop=None, **dataset_options)
        except DatasetError:
            self.val_set = None
        self.sampler = ResumableSampler(self.train_set, self.per_rank_batch, num_replicas=self.env.world_size,
                                        rank=self.env.rank, shuffle=True, seed=config.seed)
        self.steps_per_epoch = self.sampler.num_samples // self.per_rank_batch
        if self.steps_per_epoch == 0:
            raise TrainError(f"The training split has {len(self.train_set)} patches, fewer than one batch of "
                             f"{config.batch_size}; lower batch_size or add data")
        # Only once the data is there, so that a run refused for its data leaves no empty run folder behind.
        if self.env.is_main:
            try:
                self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TrainError(f"Cannot create the checkpoint folder {self.checkpoint_dir} ({exc.strerror}); "
                                 "set out_dir to a folder you may write to") from None
        self.loader = DataLoader(self.train_set, batch_size=self.per_rank_batch, sampler=self.sampler,
                                 collate_fn=collate, num_workers=config.num_workers, drop_last=True,
                                 pin_memory=self.env.device.type == "cuda",
                                 persistent_workers=False,
                                 # Its own generator: a new epoch's iterator then draws its worker seed from
                                 # there, not from torch's global RNG, which pix2pix's dropout uses and which a
                                 # resume must find exactly where the run left it.
                                 generator=torch.Generator().manual_seed(config.seed))

        self.model = build(architecture(config))
        self.discriminator: Optional[pix2pix.PatchDiscriminator] = None
        if config.model == pix2pix.ARCHITECTURE:
            self.discriminator = pix2pix.PatchDiscriminator(self.model.in_channels + OPTICAL_CHANNELS)
            for network in (self.model, self.discriminator):
                pix2pix.init_weights(network)
            self.discriminator.to(self.env.device)
            # Isola et al.: Adam with beta1 0.5 for both networks.
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate,
                                                                     betas=(0.5, 0.999))
            self.discriminator_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.learning_rate,
                                                            betas=(0.5, 0.999))
        else:
            self.optimizer = torch.optim.NAdam(self.model.parameters(), lr=config.learning_rate)
        self.model.to(self.env.device)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.last_checkpoint: Optional[Path] = None
        if resume and resume_state is not None:
            self._resume(resume, resume_state)
        self.network = (DistributedDataParallel(self.model, device_ids=[self.env.local_rank]
                                                if self.env.device.type == "cuda" else None)
                        if self.env.world_size > 1 else self.model)
        self.writer: Optional["SummaryWriter"] = None  # rank 0's
        if self.env.is_main:
            from torch.utils import tensorboard
            self.writer = tensorboard.SummaryWriter(str(self.out_dir / "tensorboard"))

    def _resume(self, path: str, state: Dict) -> None:
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])
        self.step, self.epoch, self.batch_in_epoch = int(state["step"]), int(state["epoch"]), \
            int(state["batch_in_epoch"])
        if (state.get("world_size"), state.get("batch_size")) != (self.env.world_size, self.config.batch_size):
            if self.env.is_main:
                print(f"warning: {path} was written with {state.get('world_size')} processes and batch "
                      f"{state.get('batch_size')}; epoch {self.epoch} restarts at its first batch "
                      "(not an exact continuation)", file=sys.stderr)
            self.batch_in_epoch = 0
        set_rng_state(state["rng"])
        self.last_checkpoint = Path(path)

    def save(self, name: str = "last.pt") -> None:
        """Write a checkpoint (weights, optimiser, random states, data position) under ``name``; rank 0 only."""
        if self.env.is_main:
            path = self.checkpoint_dir / name
            provenance = make_provenance(
                loss=self.config.loss, training_data=f"SEN12MS-CR ({self.config.data})",
                description=f"training.train step {self.step}, epoch {self.epoch}")
            gan = ({} if self.discriminator is None else
                   {"discriminator": self.discriminator.state_dict(),
                    "discriminator_optimizer": self.discriminator_optimizer.state_dict()})
            save_checkpoint(str(path), self.model, provenance, optimizer=self.optimizer.state_dict(), **gan,
                            step=self.step, epoch=self.epoch, batch_in_epoch=self.batch_in_epoch,
                            world_size=self.env.world_size, batch_size=self.config.batch_size,
                            config=self.config.to_dict(), rng=rng_state())
            self.last_checkpoint = self.checkpoint_dir / "last.pt"
        self.env.barrier()

    def _drop_old_epoch_checkpoints(self) -> None:
        keep = self.config.keep_epoch_checkpoints
        if self.env.is_main and keep:
            for old in range(self.epoch - keep, 0, -1):
                (self.checkpoint_dir / f"epoch_{old}.pt").unlink(missing_ok=True)

    def _stop_on_bad_loss(self, loss_value: float, what: str = "loss") -> None:
        where = (f"; the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint
                 else "; no checkpoint was written yet")
        raise TrainError(f"The {what} became {loss_value} at step {self.step + 1} (epoch {self.epoch}); stopped "
                         f"before updating the weights{where}. Lower learning_rate or check the data")

    def train_step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """One optimiser step; the losses of the batch (averaged over the processes) by name."""
        batch = {k: v.to(self.env.device, non_blocking=True) for k, v in batch.items()}
        if self.discriminator is not None:
            return self._gan_step(batch)
        with torch.autocast(self.env.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            prediction = self.network(batch["input"])
        loss = compute_loss(self.config.loss, prediction.float(), batch, self.config.carl_lambda)
        loss_value = float(self.env.mean(loss.detach()))
        if not math.isfinite(loss_value):
            self._stop_on_bad_loss(loss_value)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {self.config.loss: loss_value}

    def _autocast(self) -> torch.autocast:
        """bf16 autocast on a GPU where the config asks for it; a no-op elsewhere."""
        return torch.autocast(device_type=self.env.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)

    def _gan_step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """pix2pix: a discriminator step on real and generated pairs, then a generator step against it."""
        condition, target = batch["input"], batch["target"]
        discriminator = self.discriminator
        if discriminator is None:
            raise ValueError("A GAN step needs the discriminator that pix2pix training builds")
        with self._autocast():
            fake = self.network(condition)
            real_logits = discriminator(condition, target)
            fake_logits = discriminator(condition, fake.detach())
        fake = fake.float()
        discriminator_loss = pix2pix.discriminator_loss(real_logits.float(), fake_logits.float())
        value = float(self.env.mean(discriminator_loss.detach()))
        if not math.isfinite(value):
            self._stop_on_bad_loss(value, "discriminator loss")
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        discriminator_loss.backward()
        self.env.average_gradients(discriminator)
        self.discriminator_optimizer.step()

        with self._autocast():
            fooled_logits = discriminator(condition, fake)
        losses = pix2pix.generator_loss(fooled_logits.float(), fake, target, self.config.l1_weight)
        values = self.env.mean(torch.stack([losses["total"], losses["gan"], losses["l1"]]).detach())
        if not math.isfinite(float(values[0])):
            self._stop_on_bad_loss(float(values[0]), "generator loss")
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()  # also reaches the discriminator's gradients, cleared before its next step
        self.optimizer.step()
        return {self.config.loss: float(values[0]), "gan": float(values[1]), "l1": float(values[2]),
                "discriminator": value}

    def run(self) -> None:
        """Train until ``epochs`` or ``max_steps``; checkpoint, validate and log on the way."""
        config = self.config
        total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps:
            total_steps = min(total_steps, config.max_steps)
        bar = None
        if self.env.is_main:
            from tqdm import tqdm
            bar = tqdm(total=total_steps, initial=min(self.step, total_steps), unit="step", dynamic_ncols=True)
        started, steps_done = time.perf_counter(), 0
        try:
            while self.epoch < config.epochs and self.step < total_steps:
                self.sampler.set_epoch(self.epoch)
                self.sampler.skip_batches = self.batch_in_epoch
                self.train_set.set_epoch(self.epoch)
                for batch in self.loader:
                    losses = self.train_step(batch)
                    self.step, self.batch_in_epoch, steps_done = self.step + 1, self.batch_in_epoch + 1, steps_done + 1
                    if bar is not None:
                        self._log(bar, losses, steps_done * config.batch_size / (time.perf_counter() - started))
                    end_of_epoch = self.batch_in_epoch == self.steps_per_epoch
                    self._after_step(end_of_epoch, total_steps)
                    if end_of_epoch or self.step >= total_steps:
                        break
        finally:
            if bar is not None:
                bar.close()
        if config.debug_save_rank_params:
            networks = {"": self.model, "discriminator.": self.discriminator}
            torch.save({prefix + key: value.detach().cpu() for prefix, network in networks.items()
                        if network is not None for key, value in network.named_parameters()},
                       self.out_dir / f"rank{self.env.rank}_params.pt")
        if self.writer is not None:
            self.writer.close()

    def _log(self, bar: "tqdm", losses: Dict[str, float], samples_per_second: float) -> None:
        bar.set_postfix(loss=f"{losses[self.config.loss]:.4f}", samples_per_s=f"{samples_per_second:.1f}")
        bar.update(1)
        if self.writer is not None and (self.step % self.config.log_every_steps == 0 or self.step == 1):
            for name, value in losses.items():
                self.writer.add_scalar(f"train/loss_{name}", value, self.step)
            self.writer.add_scalar("train/samples_per_s", samples_per_second, self.step)

    def _after_step(self, end_of_epoch: bool, total_steps: int) -> None:
        """Epoch bookkeeping, validation and checkpoints (a checkpoint records where to continue)."""
        if end_of_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            self.validate()
            self.save(f"epoch_{self.epoch}.pt")
            self._drop_old_epoch_checkpoints()
        every = self.config.checkpoint_every_steps
        if end_of_epoch or self.step >= total_steps or (every and self.step % every == 0):
            self.save()
        if self.config.debug_kill_after_step and self.step == self.config.debug_kill_after_step:
            os.kill(os.getpid(), signal.SIGKILL)

    def validate(self) -> None:
        """Score the validation split on rank 0 (the others wait) and log metrics and an image panel."""
        if self.env.is_main and self.writer is not None and self.val_set is not None and len(self.val_set):
            from .evaluate import TableAccumulator, rgb_panel
            count = min(self.config.val_patches or len(self.val_set), len(self.val_set))
            table = TableAccumulator()
            self.model.eval()
            with torch.no_grad():
                for index in range(count):
                    sample = self.val_set[index]
                    with torch.autocast(self.env.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
                        prediction = self.model(sample["input"][None].to(self.env.device))
                    prediction = prediction.float()[0].cpu().numpy()
                    table.add(prediction, sample["target"].numpy(), sample["cloudy"].numpy(),
                              sample["mask"].numpy(), self.train_set.info)
                    if index == 0:
                        self.writer.add_image("val/cloudy_prediction_target",
                                              rgb_panel([sample["cloudy"].numpy(), prediction,
                                                         sample["target"].numpy()], self.train_set.info),
                                              self.step)
            self.model.train()
            for name, value in table.row().items():
                self.writer.add_scalar(f"val/{name}", value, self.step)
        self.env.barrier()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line of ``python -m training.train``."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="YAML file (training/configs/default.yaml holds the paper's values, "
                        "training/configs/pix2pix.yaml its pix2pix baseline's)")
    parser.add_argument("--model", help=f"architecture: {' or '.join(ARCHITECTURES)} (overrides the config)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key; repeatable")
    parser.add_argument("--loss", choices=("target", "carl"), help="L_T or L_CARL (overrides the config)")
    parser.add_argument("--no-sar", action="store_true", help="optical input only (overrides the config)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), help="overrides the config")
    parser.add_argument("--resume", help="checkpoint written by this script (e.g. .../checkpoints/last.pt)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m training.train``: train (or resume) with the configuration and overrides given; the exit status."""
    args = parse_args(argv)
    overrides = list(args.set)
    if args.model:
        overrides.append(f"model={args.model}")
    if args.loss:
        overrides.append(f"loss={args.loss}")
    if args.no_sar:
        overrides.append("use_sar=false")
    if args.device:
        overrides.append(f"device={args.device}")
    trainer = None
    try:
        config = load_config(args.config, overrides)
        trainer = Trainer(config, resume=args.resume)
        trainer.run()
    except (ConfigError, TrainError, CheckpointError) as exc:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if trainer is not None:
            trainer.env.close()
    return 0


if __name__ == "__main__":
    from qgis_cloudremoval.core.command_line import run_cli
    sys.exit(run_cli(main))

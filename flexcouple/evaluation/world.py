"""The processes of a data-parallel evaluation: torchrun (torch.distributed, gloo) or mpiexec (mpi4py)."""
from __future__ import annotations

import os


class World:
    """Rank and size of a data-parallel evaluation; gathers picklable objects to rank 0."""

    def __init__(self):
        self.rank, self.size, self._comm, self._dist, self._owns_group = 0, 1, None, None, False
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun
            import torch.distributed as dist
            if not dist.is_initialized():
                dist.init_process_group("gloo")
                self._owns_group = True
            self.rank, self.size, self._dist = dist.get_rank(), dist.get_world_size(), dist
        else:  # mpiexec (MPICH, Open MPI or a PMIx launcher): the solver's one launcher detection
            from solver.mpi import world_comm
            self._comm = world_comm()
            if self._comm is not None:
                self.rank, self.size = self._comm.Get_rank(), self._comm.Get_size()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        """Tear down the process group this world created. After a clean run every rank first waits
        for rank 0 (still writing the report): a rank that left with the gloo group alive could die in
        its destructor at interpreter exit (SIGABRT, "terminate called without an active exception")."""
        if self._owns_group and self._dist.is_initialized():
            if exc_type is None:
                self._dist.barrier()
            self._dist.destroy_process_group()
        return False

    def gather(self, obj) -> list | None:
        if self.size == 1:
            return [obj]
        if self._dist is not None:
            out = [None] * self.size if self.rank == 0 else None
            self._dist.gather_object(obj, out, dst=0)
            return out
        return self._comm.gather(obj, root=0)

    def bcast(self, obj):
        if self.size == 1:
            return obj
        if self._dist is not None:
            box = [obj]
            self._dist.broadcast_object_list(box, src=0)
            return box[0]
        return self._comm.bcast(obj, root=0)

defmodule HordeC do
  @moduledoc """
  Elixir client for HordeC: `hordec` C nodes that join the cluster as *hidden* Erlang
  distribution peers and host replicated state, reached from any BEAM process.

  A `hordec` node never shows up in `Node.list/0` (only in `Node.list(:hidden)` and
  `Node.list(:connected)`), so membership is always explicit: you name the C nodes you
  talk to.

  Modules:

    * `HordeC.Node` – talk to the `hordec` control process of a C node (ping, info, echo, raw
      requests).
    * `HordeC.Crdt` – a map replicated across C nodes, with `DeltaCrdt`'s API shape.
    * `HordeC.Registry` – Horde.Registry's API (`:unique` and `:duplicate` keys), replicated in C
      nodes, read locally from ETS, failing over between C nodes.
    * `HordeC.DynamicSupervisor` – Horde.DynamicSupervisor's API: children on BEAM nodes and C
      workers (`HordeC.CWorker`) inside C nodes, placed by a hash ring
      (`HordeC.UniformDistribution`, `HordeC.UniformQuorumDistribution`,
      `HordeC.UniformRandomDistribution`), restarted elsewhere when a member dies.
    * `HordeC.Cluster` – `set_members/2,3` and `members/1` for registries and supervisors.
    * `HordeC.Daemon` – runs this BEAM node's own hordec (`hordec: :local`), owned by the node, and
      finds the daemons of the other BEAM nodes.
    * `HordeC.Telemetry` – the `:telemetry` events the client emits when `:telemetry` is present.
    * `HordeC.Status` – a cluster's nodes, replicas and sync state (`mix horde_c.status`).
    * `HordeC.Mirror` – an exact local copy of a replica's map, kept by its change stream (the
      building block for clients that serve reads locally).
    * `HordeC.Attachment` – attach to one of several C nodes, mirror, fail over, re-assert: the
      machinery under `HordeC.Registry` and `HordeC.DynamicSupervisor`.

  Errors follow one convention, as Elixir's own `Registry` does: a bad argument raises
  `ArgumentError` naming the argument or option and what was expected; a C node that cannot be
  reached shows up as an exit (the ones `GenServer.call/3` raises) or as `{:error, reason}`; each
  function's documentation says which.
  """

  @typedoc "The node name of a running `hordec` C node, e.g. `:\"h1@127.0.0.1\"`."
  @type c_node :: node()

  @typedoc "Why a request to a C node failed."
  @type error_reason :: :noconnection | :noproc | :timeout | term()
end

defmodule HordeC.Telemetry do
  @moduledoc """
  `:telemetry` events of the HordeC client — emitted only when the `:telemetry` library is
  there; `:horde_c` does not depend on it.

  An event is sent when the `:telemetry` module is loaded, which it is as soon as anything has
  attached a handler (or in a release, where every module is loaded at boot). Without it the
  client works unchanged and each call site costs one BIF call (`function_exported?/3` on a
  module that is not loaded). Add `{:telemetry, "~> 1.0"}` to your app to receive them.

  Names follow the ecosystem's conventions (`[:app, :component, :action, :start | :stop |
  :exception]` spans with `duration` in native time units, as `:telemetry.span/3` emits them):

  | event | measurements | metadata |
  |---|---|---|
  | `[:horde_c, :registry, :register, :start \\| :stop \\| :exception]` | `system_time` / `duration` | `registry`, `key`; on stop `result` (`:ok`, `:already_registered`, `:error`) |
  | `[:horde_c, :registry, :unregister, :start \\| :stop \\| :exception]` | as above | `registry`, `key` |
  | `[:horde_c, :dynamic_supervisor, :start_child, :start \\| :stop \\| :exception]` | as above | `supervisor`; on stop `result` |
  | `[:horde_c, :crdt, :mutate, :start \\| :stop \\| :exception]` | as above | `crdt`, `op` (`:put`, `:delete`, `:merge`, `:drop`) |
  | `[:horde_c, :attachment, :attached]` | `system_time` | `name`, `hordec` (the node), `reason` (`:initial` or `:failover`), `kind` (`:registry` or `:dynamic_supervisor`) |
  | `[:horde_c, :attachment, :detached]` | `system_time` | `name`, `hordec`, `kind` — the replica went away: a failover follows |
  | `[:horde_c, :daemon, :start]` | `system_time`, `duration` (spawn to ready) | `node` (the hordec node), `os_pid`, `executable` |
  | `[:horde_c, :daemon, :exit]` | `system_time` | `node`, `os_pid`, `status` (exit status, or `:killed` when the daemon stopped it) |
  | `[:horde_c, :daemon, :peer_discovered]` | `system_time` | `node` (ours), `peer` (the other BEAM node's hordec), `beam_node` |
  | `[:horde_c, :daemon, :peer_lost]` | `system_time` | as above: that BEAM node and its hordec are gone, its replicas were removed from the members |
  """

  @doc "Emits `event` when `:telemetry` is loaded; a no-op otherwise."
  @spec execute([atom()], map(), map()) :: :ok
  def execute(event, measurements, metadata) do
    if :erlang.function_exported(:telemetry, :execute, 3) do
      # A handler that raises is :telemetry's business (it detaches it), never the caller's.
      apply(:telemetry, :execute, [event, measurements, metadata])
    end

    :ok
  end

  @doc """
  Runs `fun` inside a `prefix ++ [:start | :stop | :exception]` span. `fun` returns
  `{result, stop_metadata}`; `result` is returned. Without `:telemetry`, only `fun` runs.
  """
  @spec span([atom()], map(), (() -> {result, map()})) :: result when result: term()
  def span(prefix, meta, fun) do
    if :erlang.function_exported(:telemetry, :execute, 3) do
      start = System.monotonic_time()

      execute(
        prefix ++ [:start],
        %{system_time: System.system_time(), monotonic_time: start},
        meta
      )

      try do
        {result, stop_meta} = fun.()
        stop = System.monotonic_time()

        execute(
          prefix ++ [:stop],
          %{duration: stop - start, monotonic_time: stop},
          Map.merge(meta, stop_meta)
        )

        result
      catch
        kind, reason ->
          stop = System.monotonic_time()

          execute(
            prefix ++ [:exception],
            %{duration: stop - start, monotonic_time: stop},
            Map.merge(meta, %{kind: kind, reason: reason, stacktrace: __STACKTRACE__})
          )

          :erlang.raise(kind, reason, __STACKTRACE__)
      end
    else
      {result, _} = fun.()
      result
    end
  end
end

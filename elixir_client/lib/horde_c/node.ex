defmodule HordeC.Node do
  @moduledoc """
  Talk to the control process of a `hordec` C node.

  Every C node runs a process registered as `hordec`. It answers `GenServer.call/3`
  requests (it speaks the `:"$gen_call"` protocol), so any BEAM process can reach it as
  `{:hordec, node}`. This module wraps the requests users need most and turns the exits
  of a failed `GenServer.call/3` into `{:error, reason}` values:

      iex> HordeC.Node.ping(:"h1@127.0.0.1")
      :pong
      iex> HordeC.Node.echo(:"h1@127.0.0.1", {:hello, [1, 2.0, "three"]})
      {:ok, {:hello, [1, 2.0, "three"]}}
      iex> {:ok, %{version: "0.1.0", peers: peers}} = HordeC.Node.info(:"h1@127.0.0.1")

  The C node is a *hidden* node: after the first request it appears in
  `Node.list(:hidden)`, never in `Node.list/0`.

  Errors: a `node` that is not an atom, or a `timeout` that is neither `:infinity` nor a
  non-negative integer, raises `ArgumentError`. A C node that cannot be reached never raises or
  exits here: `ping/2` answers `:pang`, the others `{:error, reason}`.
  """

  @control :hordec
  @default_timeout 5_000

  @typedoc "What `info/2` returns about a running C node."
  @type info :: %{
          required(:version) => String.t(),
          required(:node) => node(),
          required(:uptime_ms) => non_neg_integer(),
          required(:peers) => [node()],
          required(:os_pid) => pos_integer(),
          required(:rss_bytes) => non_neg_integer(),
          required(:processes) => non_neg_integer(),
          required(:msgs_in) => non_neg_integer(),
          required(:msgs_out) => non_neg_integer(),
          required(:ticktime) => pos_integer(),
          optional(atom()) => term()
        }

  @doc """
  Checks that `node` runs a `hordec` control process that answers.

  Unlike `Node.ping/1` (which only proves the distribution handshake works) this sends a
  `:ping` request to the `hordec` process. Returns `:pong`, or `:pang` if the node cannot
  be reached, has no control process, or does not answer within `timeout` ms.
  """
  @spec ping(HordeC.c_node(), timeout()) :: :pong | :pang
  def ping(node, timeout \\ @default_timeout) do
    case call(node, :ping, timeout) do
      {:ok, :pong} -> :pong
      _ -> :pang
    end
  end

  @doc """
  Returns run-time information about the C node: version, node name, uptime, connected
  peers, OS pid, resident memory, number of C processes, message counters and the
  distribution tick time (seconds).
  """
  @spec info(HordeC.c_node(), timeout()) :: {:ok, info()} | {:error, HordeC.error_reason()}
  def info(node, timeout \\ @default_timeout) do
    case call(node, :info, timeout) do
      {:ok, %{} = info} -> {:ok, info}
      {:ok, other} -> {:error, {:unexpected_reply, other}}
      {:error, _} = error -> error
    end
  end

  @doc """
  Sends `term` to the C node and returns what came back, which must be the same term.

  Useful to check that a term survives the trip through the C node's codec.
  """
  @spec echo(HordeC.c_node(), term(), timeout()) ::
          {:ok, term()} | {:error, HordeC.error_reason()}
  def echo(node, term, timeout \\ @default_timeout) do
    call(node, {:echo, term}, timeout)
  end

  @doc """
  Sends any `request` to the control process of `node` with `GenServer.call/3`.

  This is the low-level entry point the other functions (and later modules) build on.
  A reply `reply` becomes `{:ok, reply}`; if the call exits, the exit is turned into
  `{:error, reason}` where reason is `:noconnection`, `:noproc`, `:timeout` or the raw
  exit reason. The control process answers requests it does not know with
  `{:error, {:unknown_request, request}}`, which is returned as
  `{:ok, {:error, {:unknown_request, request}}}`.
  """
  @spec call(HordeC.c_node(), term(), timeout()) ::
          {:ok, term()} | {:error, HordeC.error_reason()}
  def call(node, request, timeout \\ @default_timeout) do
    check_timeout!(timeout)
    do_call(server(node), request, timeout)
  end

  defp do_call(server, request, timeout) do
    {:ok, GenServer.call(server, request, timeout)}
  catch
    :exit, reason -> {:error, exit_reason(reason)}
  end

  @doc "The address of the control process of `node`, usable with `GenServer.call/3` and `send/2`."
  @spec server(HordeC.c_node()) :: {:hordec, node()}
  def server(node) when is_atom(node) and node != nil, do: {@control, node}

  def server(node) do
    raise ArgumentError, "expected node to be a node name (an atom), got: #{inspect(node)}"
  end

  defp check_timeout!(timeout)
       when timeout == :infinity or (is_integer(timeout) and timeout >= 0),
       do: :ok

  defp check_timeout!(timeout) do
    raise ArgumentError,
          "expected timeout to be :infinity or a non-negative integer, got: #{inspect(timeout)}"
  end

  # GenServer.call exits with {reason, {GenServer, :call, args}}.
  defp exit_reason({reason, {GenServer, :call, _}}), do: exit_reason(reason)
  defp exit_reason({:nodedown, _node}), do: :noconnection
  defp exit_reason(reason), do: reason
end

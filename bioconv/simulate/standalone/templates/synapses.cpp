{# bioconv: derived from Brian2's cpp_standalone/templates/synapses.cpp (UPSTREAM.toml). Changed: with the
   preference devices.bioconv_standalone.direct_propagation (and no OpenMP), when the pathway's delays
   are all zero (checked at run time, once the binary has loaded them) its events are applied straight
   from the source's spike space and each spiking source's synapse list, in the order the queue would
   hand them on, instead of being copied through the spike queue; otherwise Brian2's loop runs. Every
   code object of this template applies the same condition as synapses_push_spikes.cpp, so a queue is
   only bypassed when all of its readers bypass it. A spiking source whose synapses are one contiguous
   range targeting one increasing run of neurons (a fully connected layer) has its events applied with
   the target computed instead of loaded, which lets the compiler vectorize them. #}
{% extends 'common_synapses.cpp' %}

{% set _non_synaptic = [] %}
{% for var in variables %}
    {% if variable_indices[var] not in ('_idx', '0') %}
        {# This is a trick to get around the scoping problem #}
        {% if _non_synaptic.append(1) %}{% endif %}
    {% endif %}
{% endfor %}

{% block maincode %}

    // This is only needed for the _debugmsg function below
    {# USES_VARIABLES { _synaptic_pre } #}

    // scalar code
    const size_t _vectorisation_idx = -1;
    {{scalar_code|autoindent}}

    {% if bioconv_direct_propagation(pathway) %}
    {% set _space = pathway.source.variables['_' + pathway.event + 'space'] %}
    {% set _queue = pathway.name + '.queue[0]' %}
    {# the statement of the vector code that loads each event's target (get_array_name: the pointer) #}
    {% set _post_ptr = get_array_name(pathway.synapses.variables['_synaptic_post']) %}
    {% set _post_def = 'const int32_t _postsynaptic_idx = ' + _post_ptr + '[_idx];' %}
    {# one pass over the statements: the copy with the target computed, whether the load is there,
       and whether they write a presynaptic or scalar variable (then the loop would be a reduction,
       which -ffast-math lets the compiler reorder) #}
    {% set _dense_code, _loads, _reduces = [], [], [] %}
    {% for _line in (vector_code.split('\n') if vector_code is string else vector_code) %}
        {% set _is_load = _line.strip() == _post_def %}
        {% if _dense_code.append('const size_t _postsynaptic_idx = _post_first + _j;' if _is_load else _line) %}{% endif %}
        {% if _is_load and _loads.append(1) %}{% endif %}
        {% if ('[_presynaptic_idx] =' in _line or '[0] =' in _line) and _reduces.append(1) %}{% endif %}
    {% endfor %}
    {% set _dense_post = _loads and not _reduces %}
    if {{bioconv_direct_condition(pathway.name)}}
    {
        {% if _dense_post %}
        // per source: 1 when its targets are one increasing run of neurons (a fully connected layer),
        // so the events need no target index and vectorize; checked at its first spike (the
        // connectivity is fixed once the binary has loaded it)
        static std::vector<signed char> _post_runs;
        if(_post_runs.empty())
            _post_runs.assign({{_queue}}->source_end - {{_queue}}->source_start, -1);
        {% endif %}
        // bioconv: zero delay, events straight from the source's spikes (direct_propagation)
        const int32_t * const _source_spikes = {{get_array_name(_space, access_data=False)}};
        const int32_t _n_source_spikes = _source_spikes[{{_space.size - 1}}];
        for(int32_t _k=0; _k<_n_source_spikes; _k++)
        {
            const int32_t _source = _source_spikes[_k];
            if(_source < {{_queue}}->source_start || _source >= {{_queue}}->source_end) continue;
            const std::vector<int> &_synapses = {{_queue}}->synapses[_source - {{_queue}}->source_start];
            const size_t _n_synapses = _synapses.size();
            if(_n_synapses == 0) continue;
            if((size_t)(_synapses[_n_synapses-1] - _synapses[0]) == _n_synapses-1)
            {
                // one contiguous range (the list is increasing): no index to load per event
                const size_t _first = _synapses[0];
                {% if _dense_post %}
                signed char &_dense = _post_runs[_source - {{_queue}}->source_start];
                if(_dense < 0)
                {
                    _dense = 1;
                    for(size_t _j=1; _j<_n_synapses; _j++)
                        if({{_post_ptr}}[_first+_j] != {{_post_ptr}}[_first] + (int32_t)_j) { _dense = 0; break; }
                }
                if(_dense)
                {
                    // the same statements, in the same order, with the target computed: each target
                    // once per event, so the loop vectorizes and every value is the same
                    const size_t _post_first = {{_post_ptr}}[_first];
                    for(size_t _j=0; _j<_n_synapses; _j++)
                    {
                        const size_t _idx = _first + _j;
                        const size_t _vectorisation_idx = _idx;
                        {{_dense_code|autoindent}}
                    }
                    continue;
                }
                {% endif %}
                for(size_t _idx=_first; _idx<_first+_n_synapses; _idx++)
                {
                    const size_t _vectorisation_idx = _idx;
                    {{vector_code|autoindent}}
                }
            }
            else
            {
                for(size_t _j=0; _j<_n_synapses; _j++)
                {
                    const size_t _idx = _synapses[_j];
                    const size_t _vectorisation_idx = _idx;
                    {{vector_code|autoindent}}
                }
            }
        }
    }
    else
    {% endif %}
    {{ openmp_pragma('parallel') }}
    {
    std::vector<int> *_spiking_synapses = {{pathway.name}}.peek();
    const int _num_spiking_synapses = _spiking_synapses->size();

    {% if _non_synaptic %}
    {{ openmp_pragma('master') }}
    {
        for(int _spiking_synapse_idx=0;
            _spiking_synapse_idx<_num_spiking_synapses;
            _spiking_synapse_idx++)
        {
            const size_t _idx = (*_spiking_synapses)[_spiking_synapse_idx];
            const size_t _vectorisation_idx = _idx;
            {{vector_code|autoindent}}
        }
    }
    {% else %}
    {{ openmp_pragma('static') }}
    for(int _spiking_synapse_idx=0;
        _spiking_synapse_idx<_num_spiking_synapses;
        _spiking_synapse_idx++)
    {
        const size_t _idx = (*_spiking_synapses)[_spiking_synapse_idx];
        const size_t _vectorisation_idx = _idx;
        {{vector_code|autoindent}}
    }

    {% endif %}
    }
{% endblock %}


{% block extra_functions_cpp %}
void _debugmsg_{{codeobj_name}}()
{
    using namespace brian;
    std::cout << "Number of synapses: " << {{_dynamic__synaptic_pre}}.size() << endl;
}
{% endblock %}

{% block extra_functions_h %}
void _debugmsg_{{codeobj_name}}();
{% endblock %}

{% macro main_finalise() -%}
#ifdef DEBUG
_debugmsg_{{codeobj_name}}();
#endif
{% endmacro %}
